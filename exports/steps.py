"""The steps of an export run as people read them: plain names, and their timings as bars."""

from __future__ import annotations

from dataclasses import dataclass

# In the order a run goes through them; "reuse" only in incremental runs. "stream": the records passing, a page at a
# time, from NetBox (a full run) or the snapshots (an incremental one) into the devices and VMs CSVs.
STEP_LABELS = {
    "fetch": "Fetching devices and VMs from NetBox",
    "lookups": "Reading sites, tenants and contacts",
    "reuse": "Reusing the unchanged objects",
    "stream": "Streaming devices and VMs into the CSVs",
    "write": "Writing the files",
    "save": "Recording the run",
}


def step_label(name: str) -> str:
    """The plain name of a step (an unknown one as it is)."""
    return STEP_LABELS.get(name, name.replace("_", " ").capitalize())


@dataclass(frozen=True, slots=True)
class StepBar:
    """One step's time, as a share of the longest step (for a bar chart)."""

    name: str
    label: str
    seconds: float
    percent: int


def step_bars(timings: dict[str, float]) -> list[StepBar]:
    """The steps of ``timings`` in run order, each with its width relative to the longest (at least 1 %)."""
    order = [name for name in STEP_LABELS if name in timings] + [n for n in timings if n not in STEP_LABELS]
    longest = max((float(timings[name]) for name in order), default=0.0)
    return [
        StepBar(
            name=name,
            label=step_label(name),
            seconds=float(timings[name]),
            percent=max(1, round(100 * float(timings[name]) / longest)) if longest > 0 else 1,
        )
        for name in order
    ]
