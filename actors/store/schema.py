"""Versioned migrations (``PRAGMA user_version``). Append; never edit a released step.

Version 1 holds the reference system's ten tables, with two deliberate changes:

- ``order_intents.intent_id`` is deterministic over (trading date, strategy,
  symbol, side) only. The reference hashed the run id and wall-clock hour in,
  so a re-run after a crash produced a *new* id and could submit twice.
- ``pending_signals`` counts expiry in trading sessions (``expires_asof``),
  not wall-clock days, so a long weekend does not eat the decay window.

and the daemon's own: ``cycles`` (the cycle journal), ``kill_switches``
(latched, persisted switches), ``kill_switch_events`` (audit trail),
``bars`` (the market-data cache), ``models`` (fitted ML models with their
training window) and ``notifications`` (messages that finally failed).
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # ---- version 1
    """
    CREATE TABLE strategies (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT UNIQUE NOT NULL,
        description TEXT,
        capital_allocation REAL,
        initial_capital REAL,
        enabled INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
    );

    CREATE TABLE signals (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        strategy_id INTEGER NOT NULL REFERENCES strategies(id),
        symbol TEXT NOT NULL,
        signal_type TEXT NOT NULL,
        confidence REAL,
        price REAL,
        atr REAL,
        shares INTEGER,
        reasoning TEXT,
        asof_date TEXT NOT NULL,
        generated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
        terminal_state TEXT,
        terminal_reason TEXT,
        terminal_at TEXT
    );
    CREATE INDEX signals_run ON signals(run_id);
    CREATE INDEX signals_asof ON signals(asof_date, strategy_id);

    CREATE TABLE trades (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        strategy_id INTEGER NOT NULL REFERENCES strategies(id),
        signal_id INTEGER REFERENCES signals(id),
        intent_id TEXT REFERENCES order_intents(intent_id),
        symbol TEXT NOT NULL,
        action TEXT NOT NULL,
        shares REAL NOT NULL,
        requested_price REAL,
        exec_price REAL,
        slippage_cost REAL,
        commission_cost REAL,
        total_cost REAL,
        notional REAL,
        order_id TEXT,
        executed_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
    );
    CREATE INDEX trades_run ON trades(run_id);

    CREATE TABLE positions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        strategy_id INTEGER NOT NULL REFERENCES strategies(id),
        symbol TEXT NOT NULL,
        shares REAL NOT NULL,
        avg_price REAL,
        current_price REAL,
        market_value REAL,
        unrealized_pnl REAL,
        entry_date TEXT,
        stop_price REAL,
        atr_at_entry REAL,
        updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
        UNIQUE(strategy_id, symbol)
    );

    CREATE TABLE broker_state (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT,
        kind TEXT NOT NULL CHECK (kind IN ('START', 'RECONCILIATION', 'END')),
        cash REAL,
        equity REAL,
        positions_json TEXT NOT NULL,
        discrepancies_json TEXT,
        passed INTEGER,
        taken_at TEXT NOT NULL
    );

    CREATE TABLE system_state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );

    CREATE TABLE signal_funnel (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        asof_date TEXT,
        strategy_id INTEGER NOT NULL REFERENCES strategies(id),
        strategy_name TEXT NOT NULL,
        raw_signals_count INTEGER NOT NULL DEFAULT 0,
        after_regime_count INTEGER NOT NULL DEFAULT 0,
        after_correlation_count INTEGER NOT NULL DEFAULT 0,
        after_risk_count INTEGER NOT NULL DEFAULT 0,
        executed_count INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
        UNIQUE(run_id, strategy_id)
    );

    CREATE TABLE signal_rejections (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        signal_id INTEGER REFERENCES signals(id),
        strategy_id INTEGER REFERENCES strategies(id),
        symbol TEXT NOT NULL,
        stage TEXT NOT NULL,
        reason_code TEXT NOT NULL,
        details_json TEXT,
        created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
    );
    CREATE INDEX signal_rejections_run ON signal_rejections(run_id);

    CREATE TABLE order_intents (
        intent_id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        asof_date TEXT NOT NULL,
        strategy_id INTEGER NOT NULL REFERENCES strategies(id),
        signal_id INTEGER REFERENCES signals(id),
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        target_qty REAL NOT NULL,
        filled_qty REAL NOT NULL DEFAULT 0,
        status TEXT NOT NULL,
        broker_order_id TEXT,
        error_code TEXT,
        error_message TEXT,
        created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
        submitted_at TEXT,
        acked_at TEXT,
        filled_at TEXT
    );
    CREATE INDEX order_intents_status ON order_intents(status);

    CREATE TABLE pending_signals (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        strategy_id INTEGER NOT NULL REFERENCES strategies(id),
        symbol TEXT NOT NULL,
        signal_data_json TEXT NOT NULL,
        blocked_reason TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_asof TEXT NOT NULL,
        expires_asof TEXT NOT NULL,
        retry_count INTEGER NOT NULL DEFAULT 0,
        last_retry_at TEXT,
        status TEXT NOT NULL DEFAULT 'PENDING'
    );

    CREATE TABLE cycles (
        run_id TEXT PRIMARY KEY,
        asof_date TEXT NOT NULL,
        trigger TEXT NOT NULL,
        step TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        started_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        finished_at TEXT
    );
    CREATE INDEX cycles_asof ON cycles(asof_date);

    CREATE TABLE kill_switches (
        name TEXT PRIMARY KEY,
        active INTEGER NOT NULL,
        reason TEXT NOT NULL,
        since TEXT NOT NULL,
        source TEXT NOT NULL
    );

    CREATE TABLE kill_switch_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        active INTEGER NOT NULL,
        reason TEXT NOT NULL,
        source TEXT NOT NULL,
        at TEXT NOT NULL
    );

    CREATE TABLE bars (
        provider TEXT NOT NULL,
        symbol TEXT NOT NULL,
        date TEXT NOT NULL,
        open REAL NOT NULL,
        high REAL NOT NULL,
        low REAL NOT NULL,
        close REAL NOT NULL,
        volume REAL NOT NULL,
        PRIMARY KEY (provider, symbol, date)
    ) WITHOUT ROWID;

    CREATE TABLE models (
        strategy TEXT NOT NULL,
        trained_at TEXT NOT NULL,
        train_from TEXT NOT NULL,
        train_to TEXT NOT NULL,
        n_rows INTEGER NOT NULL,
        params_json TEXT NOT NULL,
        blob BLOB NOT NULL,
        PRIMARY KEY (strategy, train_to)
    );

    CREATE TABLE notifications (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        channel TEXT NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        body TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        last_error TEXT,
        created_at TEXT NOT NULL
    );
    """,
    # ---- version 2: order handling, the simulated broker, reconciliation
    """
    ALTER TABLE order_intents ADD COLUMN strategy TEXT;
    ALTER TABLE order_intents ADD COLUMN intent_kind TEXT NOT NULL DEFAULT 'ENTRY';
    ALTER TABLE order_intents ADD COLUMN reference_price REAL;
    ALTER TABLE order_intents ADD COLUMN atr REAL;
    ALTER TABLE order_intents ADD COLUMN reason TEXT;
    ALTER TABLE order_intents ADD COLUMN avg_fill_price REAL;
    ALTER TABLE order_intents ADD COLUMN updated_at TEXT;
    CREATE INDEX order_intents_asof ON order_intents(asof_date);

    CREATE TABLE sim_account (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        cash REAL NOT NULL,
        last_equity REAL NOT NULL,
        trading_blocked INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT NOT NULL
    );

    CREATE TABLE sim_orders (
        client_order_id TEXT PRIMARY KEY,
        broker_order_id TEXT NOT NULL UNIQUE,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        qty INTEGER NOT NULL,
        filled_qty INTEGER NOT NULL DEFAULT 0,
        filled_avg_price REAL,
        status TEXT NOT NULL,
        trade_date TEXT NOT NULL,
        submitted_at TEXT NOT NULL,
        filled_at TEXT,
        reject_reason TEXT
    );

    CREATE TABLE sim_positions (
        symbol TEXT PRIMARY KEY,
        qty INTEGER NOT NULL,
        avg_entry_price REAL NOT NULL,
        last_price REAL
    );
    """,
    # ---- version 3: risk rules that fire on the real schedule (issue 11)
    # equity_closes: the account's equity at each session's close, from the broker's
    # last_equity, an after-close reading, its history, or a backtest's closing mark; the
    # daily-loss breaker compares the latest close with the one before it.
    # order_intents.stop_atr_multiple: the stop distance the entry was sized with, so the
    # stored stop follows risk.stop_atr_multiple / the strategy's key, not a constant.
    """
    CREATE TABLE equity_closes (
        session TEXT PRIMARY KEY,
        equity REAL NOT NULL,
        source TEXT NOT NULL,
        recorded_at TEXT NOT NULL
    );
    ALTER TABLE order_intents ADD COLUMN stop_atr_multiple REAL;
    """,
    # ---- version 4: corporate actions (issue 13)
    # corporate_actions: each action as a source reported it, once (action_id is stable
    # over re-reads); applied_at when the book was changed (at the ex date), credited_at
    # when a cash dividend's cash was booked (at the pay date), bars_refreshed_at when the
    # symbol's cached bars were forgotten (once the ex-date bar is in the cycle's window,
    # so the history is fetched again adjusted).
    # corporate_action_effects: what one action did to one strategy's holding, and the
    # cash it brought (cash in lieu of fractions, dividends); credited cash counts in the
    # local cash and in the strategy's own money.
    # sim_corporate_actions: the simulated broker's own record of what it applied.
    # sim_orders.stop_price: a resting protective stop sell (good till canceled); its
    # trade_date is the first session it is still to be checked on.
    """
    ALTER TABLE sim_orders ADD COLUMN stop_price REAL;

    CREATE TABLE corporate_actions (
        action_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        symbol TEXT NOT NULL,
        ex_date TEXT NOT NULL,
        pay_date TEXT,
        ratio REAL NOT NULL DEFAULT 1.0,
        cash_per_share REAL NOT NULL DEFAULT 0.0,
        new_symbol TEXT,
        source TEXT NOT NULL,
        source_id TEXT,
        recorded_at TEXT NOT NULL,
        applied_at TEXT,
        credited_at TEXT,
        bars_refreshed_at TEXT
    );
    CREATE INDEX corporate_actions_symbol ON corporate_actions(symbol, ex_date);

    CREATE TABLE corporate_action_effects (
        action_id TEXT NOT NULL REFERENCES corporate_actions(action_id),
        strategy_id INTEGER NOT NULL REFERENCES strategies(id),
        symbol TEXT NOT NULL,
        shares_before INTEGER NOT NULL,
        shares_after INTEGER NOT NULL,
        cash REAL NOT NULL DEFAULT 0.0,
        credited INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (action_id, strategy_id)
    ) WITHOUT ROWID;

    CREATE TABLE sim_corporate_actions (
        action_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        symbol TEXT NOT NULL,
        new_symbol TEXT,
        ex_date TEXT NOT NULL,
        ratio REAL NOT NULL DEFAULT 1.0,
        shares_before INTEGER NOT NULL,
        shares_after INTEGER NOT NULL,
        cash REAL NOT NULL DEFAULT 0.0,
        pay_date TEXT,
        applied_at TEXT NOT NULL,
        credited_at TEXT
    );
    """,
    # ---- version 5: protective stops resting at the broker (issue 13)
    # order_intents.stop_price: set on a resting protective stop sell (intent_kind STOP,
    # good till canceled, its id from ``resting_stop_id``); the intent stays open while
    # the stop rests, and a fill of it books a stop-loss exit like any other fill.
    """
    ALTER TABLE order_intents ADD COLUMN stop_price REAL;
    CREATE INDEX order_intents_resting ON order_intents(strategy_id, symbol)
        WHERE stop_price IS NOT NULL;
    """,
    # ---- version 6: the pending signals still pending, by id (issue 15)
    # A partial index over the few rows still PENDING: a session's reads and writes of
    # them (the live ones, their expiry, the batch parked) read those rows, not every
    # signal ever parked; by id, so the live ones come in order without a sort.
    """
    CREATE INDEX pending_signals_pending ON pending_signals(id) WHERE status = 'PENDING';
    """,
    # ---- version 7: a session's corporate-action reads find only what is due (issue 15)
    # Partial indexes over the actions still waiting for something (to be applied, their
    # bars forgotten, their cash credited), so each per-session query reads the few due
    # rows, not every action ever recorded; ex dates for the reads of the latest ones.
    # The simulated broker's dividends still owed: each settle credits those due.
    """
    CREATE INDEX corporate_actions_unapplied ON corporate_actions(ex_date)
        WHERE applied_at IS NULL;
    CREATE INDEX corporate_actions_uncredited ON corporate_actions(ex_date)
        WHERE credited_at IS NULL AND kind = 'cash_dividend';
    CREATE INDEX corporate_actions_bars_due ON corporate_actions(ex_date)
        WHERE bars_refreshed_at IS NULL AND kind != 'cash_dividend';
    CREATE INDEX corporate_actions_ex_date ON corporate_actions(ex_date);

    CREATE INDEX sim_corporate_actions_owed ON sim_corporate_actions(pay_date)
        WHERE credited_at IS NULL;
    """,
    # ---- version 8: the renames, for the tickers renamed away (issue 15)
    # Each cycle holds the old symbols of the renames ex by its date; a partial index
    # reads those few rows, not every action recorded since the daemon began.
    """
    CREATE INDEX corporate_actions_renames ON corporate_actions(ex_date)
        WHERE kind = 'rename';
    """,
)

LATEST_VERSION = len(MIGRATIONS)
