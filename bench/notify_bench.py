"""Benchmark notifications (issue 27): 1,000 subscriptions and a run with 10,000 changes.

Usage: ``.venv/bin/python bench/notify_bench.py [--devices 10000] [--vms 1000] [--subscriptions 1000] [--repeat 3]``

On a fresh SQLite database (django-q2's database broker, as ``make run``), against the fake NetBox on loopback:

1. a first full export;
2. then ``--repeat`` pairs of incremental exports, each changing the Status of every device (10,000 changes),
   with the 1,000 subscriptions disabled and enabled, in ABBA order (off/on, on/off, ...), so both kinds run on
   the same machine state.
   Each export is ``export_run_execute``, whose after-run steps include the notifications app's
   (``notifications.services.run_finished``, registered in ``NotificationsConfig.ready``).

It prints, per export, the export's own duration (its ``started`` → ``finished``), and for the runs with
subscriptions how long after the run's end every delivery was recorded and queued (its task in the broker), and the
ratio of the export durations with and without subscriptions (medians). Targets: queued within 5 s, ratio ≈ 1.

The subscriptions: half are users' own (viewers with an e-mail), half on 10 webhook channels; most to
``export.changes`` with filters over site, change kind, columns, dataset and min_count, some to ``export.failed``
and ``quality.changed``. Nothing is sent (no queue cluster runs): the benchmark measures the export's side only.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_QUEUED_SECONDS = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--vms", type=int, default=1_000)
    parser.add_argument("--subscriptions", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the after-run steps")
    options = parser.parse_args()

    from devtools.netbox import FakeNetbox

    work = Path(tempfile.mkdtemp(prefix="notify-bench-"))
    netbox = FakeNetbox(devices=options.devices, vms=options.vms)
    netbox.start()
    from cryptography.fernet import Fernet

    os.environ.update(
        DJANGO_SETTINGS_MODULE="enreach.settings",
        DEBUG="false",
        SECRET_KEY="b" + secrets.token_urlsafe(64),
        ENREACH_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        DATABASE_URL=f"sqlite:///{work / 'bench.sqlite3'}",
        ENREACH_VAR_DIR=str(work),
        ENREACH_DATA_DIR=str(work / "data"),
        NETBOX_URL=netbox.url,
        NETBOX_TOKEN=netbox.token,
        EMAIL_URL="dummymail://",
        LOG_LEVEL="WARNING",
        # One process: the fake NetBox serves from threads of this one, which a forked writer would inherit.
        EXPORT_PARALLEL_WRITE="false",
    )
    for name in ("REDIS_URL", "Q_SYNC"):
        os.environ.pop(name, None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from django_q.models import OrmQ

    from accounts.services import user_create
    from exports.models import ExportRun
    from exports.services import export_run_execute, export_run_request
    from notifications import services
    from notifications.models import Delivery, Subscription

    def export() -> tuple[ExportRun, float]:
        """A full export; its after-run steps include the notifications app's (registered in its app config): the
        time that step took, as the run recorded it."""
        run, _ = export_run_request(trigger="command")
        if options.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            run = profiler.runcall(export_run_execute, run=run)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        else:
            run = export_run_execute(run=run)
        if run.status != "succeeded":
            raise SystemExit(f"export #{run.pk} failed: {run.error}")
        step = next(record for record in run.after_run if record["step"] == "notifications")
        if step["outcome"] != "succeeded":
            raise SystemExit(f"export #{run.pk}: the notifications step {step['outcome']}: {step.get('error')}")
        return run, float(step["seconds"])

    print(f"NetBox: {options.devices:,} devices, {options.vms:,} VMs; {options.subscriptions:,} subscriptions")
    first, _ = export()
    print(f"first full export: {first.duration:.2f} s", flush=True)

    sites = sorted({d["site"]["name"] for d in netbox.devices if d.get("site")})
    channels = [
        services.channel_save(name=f"hook-{n}", kind="webhook", target=f"https://hooks.test/{n}", secret="s" * 16)
        for n in range(10)
    ]
    admin = user_create(username="bench-admin", password=None, role="admin", email="a@example.test")
    filters: list[dict[str, object]] = [
        {},
        {"change": ["changed"], "columns": ["Status"]},
        {"dataset": "devices", "min_count": 100},
        {"columns": ["Tenant"]},
        {"change": ["added", "removed"]},
    ]
    half = options.subscriptions // 2
    for n in range(options.subscriptions):
        if n % 10 == 9:
            event, flt = ("export.failed", {}) if n % 20 == 9 else ("quality.changed", {})
        else:
            event = "export.changes"
            flt = dict(filters[n % len(filters)])
            if n % 3 == 0:
                flt["site"] = sites[n % len(sites)]
        if n < half:
            user = user_create(username=f"viewer{n}", password=None, role="viewer", email=f"v{n}@x.test")
            services.subscription_save(by=user, event=event, flt=flt)
        else:
            services.subscription_save(by=admin, event=event, channel=channels[n % len(channels)], flt=flt)

    without: list[float] = []
    with_subscriptions: list[float] = []
    queued_after: list[float] = []
    status_values = [{"value": "offline", "label": "Offline"}, {"value": "active", "label": "Active"}]
    flip = 0
    for round_ in range(options.repeat):
        # ABBA: off/on, then on/off, so that whatever drifts over the run (a growing database) falls on both.
        for enabled in (False, True) if round_ % 2 == 0 else (True, False):
            Subscription.objects.update(enabled=enabled)
            for device in netbox.devices:
                device["status"] = status_values[flip % 2]
            netbox.invalidate()
            for device in netbox.devices:  # bump last_updated so the incremental run re-fetches them
                netbox.update_device(device["id"])
            flip += 1
            before = Delivery.objects.count()
            run, step = export()
            changes = run.object_changes.count()
            queued = Delivery.objects.count() - before
            in_broker = OrmQ.objects.count()
            line = f"round {round_ + 1}, subscriptions {'on ' if enabled else 'off'}: export {run.duration:.2f} s"
            line += f", {changes:,} changes"
            if enabled:
                # How long after the run's end its deliveries were all recorded and in the broker.
                after_end = (time.time() - run.finished.timestamp()) if run.finished else float("nan")
                queued_after.append(after_end)
                with_subscriptions.append(run.duration or 0)
                line += f"; {queued:,} deliveries queued {after_end:.2f} s after the run's end (step {step:.2f} s)"
                line += f", {in_broker:,} tasks in the broker"
            else:
                without.append(run.duration or 0)
            print(line, flush=True)
    netbox.stop()
    ratio = statistics.median(with_subscriptions) / statistics.median(without)
    worst = max(queued_after)
    print()
    print(f"export with subscriptions / without (medians, same run): {ratio:.3f}")
    print(
        f"all deliveries queued within {worst:.2f} s of the run's end (worst of {len(queued_after)}; "
        f"target {TARGET_QUEUED_SECONDS:g} s): {'OK' if worst <= TARGET_QUEUED_SECONDS else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
