"""Draw a simulated run per policy: uploads, queue, fleet and waits over time (matplotlib, dev only)."""

from scaling.policy import BOOTING, DRAINING, RUNNING

FLEET_COLOURS = {BOOTING: "#f2b134", RUNNING: "#3f7fbf", DRAINING: "#9aa5b1"}


def plot_runs(runs, path, title=""):
    """`runs` maps a policy name to a finished Simulation made with record=True; one column each."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    names = list(runs)
    figure, axes = pyplot.subplots(4, len(names), figsize=(7 * len(names), 10), sharex="col", squeeze=False)
    for column, name in enumerate(names):
        run = runs[name]
        uploads, queue, fleet, waits = axes[:, column]
        uploads.vlines([t for t, _ in run.trace], 0, [images for _, images in run.trace], color="#555555")
        uploads.set_ylabel("images uploaded")
        uploads.set_title(f"{name}: {run.result['instance_minutes']} instance-minutes, "
                          f"p95 wait {run.result['wait_p95']} s")
        rows = run.timeline
        at = [row["t"] for row in rows]
        queue.step(at, [row["visible"] for row in rows], where="post", label="waiting images", color="#c0392b")
        queue.step(at, [row["in_flight"] for row in rows], where="post", label="images in flight", color="#8e44ad")
        queue.set_ylabel("images")
        queue.legend(loc="upper right")
        fleet.stackplot(at, *[[row[state] for row in rows] for state in FLEET_COLOURS], step="post",
                        labels=list(FLEET_COLOURS), colors=list(FLEET_COLOURS.values()))
        fleet.step(at, [row["target"] for row in rows], where="post", color="black", linewidth=0.8, label="target")
        fleet.set_ylabel("nodes")
        fleet.legend(loc="upper right")
        done = [m for m in run.messages if m.done]
        waits.scatter([m.arrived for m in done], [m.started - m.arrived for m in done], s=[2 + m.images for m in done],
                      alpha=0.5, color="#16a085")
        waits.set_ylabel("wait per image (s)")
        waits.set_xlabel("seconds")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    pyplot.close(figure)
