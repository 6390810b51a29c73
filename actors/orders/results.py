"""What the order manager writes and reports about an intent: its error codes and results.

Error codes
-----------
Each is written to ``order_intents.error_code`` with a message in the operator's
words, and travels in ``OrderResult.error_code`` (``limit:<code>`` only there: a
refused order has no row):

=============================  ================================================
``broker_unavailable``         nothing happened at the broker: back to NEW
``outcome_unknown``            the request may have left: UNKNOWN until found
``broker_error``               another broker failure after sending: UNKNOWN
``rejected``                   the broker refused the order
``account_blocked``            the account cannot trade: the rest of the batch
                               is not submitted
``not_submitted``              written, never sent (the account was blocked)
``missing_at_broker``          acknowledged once, now unknown to the broker
``stale``                      never sent, and its session is over: EXPIRED
``booking_failed``             a fill the store could not book
``not_found``                  SUBMITTED/UNKNOWN but unknown to the broker
``resting_stop_not_canceled``  our sell waits for the lot's stop to be cancelled
``stopped_out``                the lot's resting stop sold it first
``limit:<code>``               a pre-trade limit refused it (``orders.limits``)
=============================  ================================================

The resting stops' own codes (``cancel_requested``, ``canceled_by_daemon``,
``withdrawn``) are in ``actors.orders.resting_stops``.

Results
-------
``result_of`` is the ``OrderResult`` of a stored intent; ``refused`` that of an
order refused before any row was written (a bad side or quantity, a limit,
nothing held). An intent back at NEW with an error (the broker unavailable) is
reported as status NEW with that error, which the CycleRunner counts as a failure.
"""

from __future__ import annotations

import structlog

from actors.messages import IntentStatus, OrderIntentSpec, OrderResult
from actors.store.orders import IntentRow

log = structlog.get_logger()

# error_code values written to order_intents
BROKER_UNAVAILABLE = "broker_unavailable"
OUTCOME_UNKNOWN = "outcome_unknown"
BROKER_ERROR = "broker_error"
REJECTED = "rejected"
ACCOUNT_BLOCKED = "account_blocked"
MISSING_AT_BROKER = "missing_at_broker"
STALE = "stale"
BOOKING_FAILED = "booking_failed"
NOT_FOUND = "not_found"
NOT_SUBMITTED = "not_submitted"
RESTING_STOP = "resting_stop_not_canceled"
STOPPED_OUT = "stopped_out"


def is_blocked(row: IntentRow) -> bool:
    """Whether the broker refused this intent because the account cannot trade."""
    return row.error_code == ACCOUNT_BLOCKED


def result_of(row: IntentRow, *, existing: bool = False) -> OrderResult:
    """The result reported for a stored intent."""
    return OrderResult(
        intent_id=row.intent_id,
        strategy=row.strategy,
        symbol=row.symbol,
        side=row.side,
        qty=row.target_qty,
        status=row.status,
        filled_qty=row.filled_qty,
        avg_price=row.avg_fill_price,
        error=row.error_message,
        existing=existing,
        error_code=row.error_code,
    )


def refused(
    spec: OrderIntentSpec, iid: str, qty: int, why: str, code: str | None = None
) -> OrderResult:
    """The result of an order refused before it was written (logged; no row)."""
    log.warning("order_refused", intent_id=iid, symbol=spec.symbol, side=spec.side, reason=why)
    return OrderResult(
        iid,
        spec.strategy,
        spec.symbol,
        spec.side,
        qty,
        IntentStatus.REJECTED,
        error=why,
        error_code=code,
    )
