"""The equity chart: a real PNG of the requested size that shows something."""

from __future__ import annotations

import datetime as dt
import io
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from matplotlib.image import imread

from actors.reports.charts import equity_chart_png

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _equity(n: int, seed: int = 3) -> pd.Series:
    rng = np.random.default_rng(seed)
    values = 100_000.0 * np.cumprod(1.0 + rng.normal(0.0005, 0.012, n))
    return pd.Series(values, index=pd.bdate_range("2023-01-02", periods=n))


def _ihdr_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", png[8:16])
    assert (length, kind) == (13, b"IHDR")
    assert struct.unpack(">I", png[29:33])[0] == zlib.crc32(png[12:29])
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def _pixels(png: bytes) -> npt.NDArray[np.float32]:
    image = imread(io.BytesIO(png), format="png")
    return np.asarray(image[..., :3], dtype=np.float32)


@pytest.mark.parametrize(("width", "height"), [(900, 500), (300, 200), (641, 517), (1600, 900)])
def test_png_has_the_exact_requested_size(width: int, height: int) -> None:
    """The IHDR chunk and the decoded image are exactly width × height pixels."""
    png = equity_chart_png(_equity(260), width_px=width, height_px=height)
    assert _ihdr_size(png) == (width, height)
    assert _pixels(png).shape[:2] == (height, width)


def test_chart_is_not_blank() -> None:
    """The image varies, has many colours and dark line pixels, and weighs over 5 KB."""
    png = equity_chart_png(_equity(260), title="Paper account")
    pixels = _pixels(png)
    assert len(png) > 5_000
    assert float(pixels.var()) > 0.0
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10
    dark_blue = (pixels[..., 2] > pixels[..., 0] + 0.15) & (pixels.max(axis=2) < 0.6)
    assert int(dark_blue.sum()) > 200  # the equity line
    reddish = (pixels[..., 0] > pixels[..., 2] + 0.15) & (pixels[..., 0] > 0.6)
    assert int(reddish.sum()) > 200  # the drawdown area


def test_the_drawdown_panel_is_below_the_equity_line() -> None:
    """Line pixels sit in the upper part of the image, drawdown pixels in the lower part."""
    pixels = _pixels(equity_chart_png(_equity(260), width_px=900, height_px=500))
    blue_rows = np.nonzero((pixels[..., 2] > pixels[..., 0] + 0.15).any(axis=1))[0]
    red_rows = np.nonzero((pixels[..., 0] > pixels[..., 2] + 0.15).any(axis=1))[0]
    assert np.median(blue_rows) < np.median(red_rows)


@pytest.mark.parametrize("values", [[], [100_000.0]])
def test_no_history_still_gives_a_valid_png(values: list[float]) -> None:
    """Empty or one-point equity gives a valid PNG of the requested size with some text."""
    equity = pd.Series(values, index=pd.bdate_range("2024-01-02", periods=len(values)))
    png = equity_chart_png(equity, width_px=600, height_px=300)
    assert _ihdr_size(png) == (600, 300)
    pixels = _pixels(png)
    assert float(pixels.var()) > 0.0
    assert int((pixels.max(axis=2) < 0.5).sum()) > 50  # the "no history yet" text


@pytest.mark.parametrize("n", [2, 3, 5, 22, 130, 1300, 5200])
def test_any_history_length_draws_without_warnings(n: int) -> None:
    """From two sessions to twenty years the chart draws (warnings are errors here)."""
    png = equity_chart_png(_equity(n), width_px=450, height_px=300)
    assert _ihdr_size(png) == (450, 300)


@pytest.mark.parametrize(
    "index",
    [
        pd.RangeIndex(4),
        pd.Index([dt.date(2024, 1, d) for d in (2, 3, 4, 5)]),
        pd.date_range("2024-01-02", periods=4, tz="America/New_York"),
    ],
)
def test_any_index_kind_draws(index: pd.Index) -> None:
    """Positions, date labels and tz-aware timestamps all make a chart."""
    png = equity_chart_png(pd.Series([100.0, 104.0, 97.0, 101.0], index=index))
    assert _ihdr_size(png) == (900, 500)


def test_flat_equity_draws() -> None:
    """A flat curve (zero drawdown everywhere) still draws."""
    png = equity_chart_png(pd.Series([100.0] * 20, index=pd.bdate_range("2024-01-02", periods=20)))
    assert _ihdr_size(png) == (900, 500)


def test_invalid_input_is_refused() -> None:
    """Non-positive equity and sizes below 300 × 200 raise ValueError."""
    with pytest.raises(ValueError, match="positive and finite"):
        equity_chart_png(pd.Series([100.0, 0.0, 90.0]))
    with pytest.raises(ValueError, match="at least"):
        equity_chart_png(_equity(10), width_px=200)


def test_chart_does_not_touch_pyplot() -> None:
    """Drawing never imports pyplot, so no global figure state or GUI backend is involved."""
    script = (
        "import sys, pandas as pd\n"
        "from actors.reports.charts import equity_chart_png\n"
        "equity_chart_png(pd.Series([1.0, 2.0, 1.5]))\n"
        "print('matplotlib.pyplot' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert done.stdout.strip() == "False"


def test_concurrent_charts_from_worker_threads() -> None:
    """Charts drawn at once from several threads are all complete and identical."""
    equity = _equity(260)
    results: list[bytes] = []
    lock = threading.Lock()

    def draw() -> None:
        png = equity_chart_png(equity)
        with lock:
            results.append(png)

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 4
    assert len(set(results)) == 1
