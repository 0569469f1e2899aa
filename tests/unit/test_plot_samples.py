"""`rlvr plot` draws exactly the JSONL's numbers (read back from the figure's lines) into a real PNG;
`rlvr samples` filters and shows a run's generations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlvr.cli import main
from rlvr.plot import PlotError, plot_runs, series


def _run(path: Path, rows: list[dict], samples: list[dict] | None = None) -> Path:
    path.mkdir(parents=True)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (path / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples or []))
    return path


def _train(step: int, reward: float, **extra: float) -> dict:
    return {"step": step, "kind": "train", "reward/mean": reward, "accuracy": reward / 2, **extra}


def test_plot_lines_are_the_jsonl_series(tmp_path: Path) -> None:
    import matplotlib.image

    a = _run(tmp_path / "x" / "run", [_train(s, 0.1 * s, **{"time/step_s": 2.0}) for s in (1, 2, 3)]
             + [{"step": 3, "kind": "eval", "eval/held/accuracy": 0.7}])
    b = _run(tmp_path / "y" / "run", [_train(s, 0.3 + 0.05 * s) for s in (1, 2, 3, 4)])
    out = tmp_path / "plots" / "curves.png"
    fig = plot_runs([a, b], None, out)
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    # panels nobody logged (entropy, KL) are dropped; eval accuracy is added
    assert set(panels) == {"reward/mean", "accuracy", "time/step_s", "eval/held/accuracy"}
    for metric, ax in panels.items():
        lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()}
        for d, label in ((a, "x/run"), (b, "y/run")):  # same names: labelled by parent
            steps, values = series(d, metric)
            if steps:
                assert lines[label] == (steps, values), (metric, label)
            else:
                assert label not in lines
    image = matplotlib.image.imread(out)
    assert image.shape[0] > 300 and image.shape[1] > 600  # a real 2x2 grid of panels


def test_plot_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run(tmp_path / "r", [_train(1, 0.5)])
    with pytest.raises(PlotError, match="none of"):
        plot_runs([run], ["no/such"], tmp_path / "p.png")
    assert main(["plot", str(tmp_path / "missing"), "--out", str(tmp_path / "p.png")]) == 2
    assert "no metrics.jsonl" in capsys.readouterr().err
    assert main(["plot", str(run), "--out", str(tmp_path / "p.png"), "--metrics", "reward/mean"]) == 0
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_samples_filters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recs = [{"step": s, "prompt": f"Q: {s}+{i}=", "response": str(s + i) if i % 2 == 0 else "oops",
             "ground_truth": str(s + i), "reward": 1.0 if i % 2 == 0 else 0.0, "correct": i % 2 == 0,
             "finish_reason": "stop", "details": {"reason": "ok" if i % 2 == 0 else "mismatch", "extracted": "x"}}
            for s in (1, 2) for i in range(4)]
    run = _run(tmp_path / "r", [_train(1, 0.5)], recs)
    assert main(["samples", str(run), "--last", "--wrong", "--json"]) == 0
    shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["step"], r["response"]) for r in shown] == [(2, "oops"), (2, "oops")]
    assert main(["samples", str(run), "--step", "1", "--min-reward", "1"]) == 0
    out = capsys.readouterr()
    assert out.out.count("── step 1 │ reward 1 │ correct │ stop") == 2 and "reason ok" in out.out
    assert "2 of 2 matching" in out.err
    assert main(["samples", str(run), "--grep", "2+3", "--json"]) == 0
    assert [json.loads(x)["prompt"] for x in capsys.readouterr().out.splitlines()] == ["Q: 2+3="]
    long = dict(recs[0], response="7" * 5000)
    from rlvr.samples import render

    assert "[... 4000 characters ...]" in render(long, width=1000)
