"""django-q2 entry points: ids in, one service call."""

from __future__ import annotations

from notifications.services import deliveries_send, delivery_send, notifications_sweep


def deliveries_send_task(delivery_ids: list[str]) -> str:
    """Send queued deliveries, each claimed first: a second copy of the task sends nothing twice."""
    outcomes = deliveries_send(delivery_ids=delivery_ids)
    return ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items()))


def delivery_send_task(delivery_id: str) -> str:
    """Send one queued delivery (claimed first: a second copy of the task does nothing)."""
    return delivery_send(delivery_id=delivery_id)


def notifications_sweep_task() -> str:
    """Every minute: the stale check, and queueing again what is due (retries, deliveries of killed workers)."""
    result = notifications_sweep()
    return f"stale {result.stale}, queued again {result.requeued}"
