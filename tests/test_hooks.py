import asyncio
import logging

import pytest

from trainforge.errors import HookError
from trainforge.hooks import HookEvent, HookManager


def test_at_least_fifteen_events_including_checkpoint_and_training():
    names = {e.name for e in HookEvent}
    assert len(names) >= 15
    assert {"BEFORE_CHECKPOINT_SAVE", "ON_CHECKPOINT_CORRUPTED", "ON_TRAIN_START"} <= names


def test_hooks_run_in_priority_order_then_registration_order():
    manager = HookManager()
    order = []
    manager.register(HookEvent.ON_EPOCH_END, lambda ctx: order.append("low"), priority=-1)
    manager.register(HookEvent.ON_EPOCH_END, lambda ctx: order.append("a"))
    manager.register(HookEvent.ON_EPOCH_END, lambda ctx: order.append("high"), priority=10)
    manager.register(HookEvent.ON_EPOCH_END, lambda ctx: order.append("b"))
    result = manager.fire(HookEvent.ON_EPOCH_END, epoch=3)
    assert order == ["high", "a", "b", "low"]
    assert result.called == 4 and result.ok


def test_payload_reaches_the_hook():
    manager = HookManager()
    seen = {}
    manager.register("after_checkpoint_save", lambda ctx: seen.update(ctx.data))
    manager.fire(HookEvent.AFTER_CHECKPOINT_SAVE, path="/x", epoch=2)
    assert seen == {"path": "/x", "epoch": 2}


def test_failing_hook_is_isolated_and_logged(caplog):
    manager = HookManager()
    ran = []

    def broken(ctx):
        raise RuntimeError("webhook down")

    manager.register(HookEvent.ON_ALERT, broken, priority=1)
    manager.register(HookEvent.ON_ALERT, lambda ctx: ran.append(True))
    with caplog.at_level(logging.ERROR, logger="trainforge.hooks"):
        logging.getLogger("trainforge").propagate = True
        result = manager.fire(HookEvent.ON_ALERT)
    assert ran == [True]
    assert not result.ok and result.failures[0][0].endswith("broken")
    assert "webhook down" in caplog.text


def test_raise_on_error_propagates_as_hook_error():
    manager = HookManager(raise_on_error=True)
    manager.register(HookEvent.ON_ALERT, lambda ctx: 1 / 0, name="divide")
    with pytest.raises(HookError, match="hook 'divide' failed on event 'alert'"):
        manager.fire(HookEvent.ON_ALERT)


def test_async_hooks_are_awaited_also_inside_a_running_loop():
    manager = HookManager()
    done = []

    async def notify(ctx):
        await asyncio.sleep(0)
        done.append(ctx.event)

    manager.register(HookEvent.ON_TRAIN_END, notify)
    manager.fire(HookEvent.ON_TRAIN_END)

    async def inside_loop():
        manager.fire(HookEvent.ON_TRAIN_END)

    asyncio.run(inside_loop())
    assert done == [HookEvent.ON_TRAIN_END, HookEvent.ON_TRAIN_END]


def test_class_hooks_register_for_several_events_and_unregister():
    class Recorder:
        def __init__(self):
            self.events = []

        def on_training_start(self, run_id):
            self.events.append(("start", run_id))

        def on_best_checkpoint(self, **payload):
            self.events.append(("best", sorted(payload)))

    manager = HookManager()
    recorder = Recorder()
    handles = manager.register_object(recorder)
    # each method gets the payload names it declares, or all of them with **kwargs
    manager.fire(HookEvent.ON_TRAIN_START, run_id="7", run_dir="out", config=None)
    manager.fire(HookEvent.ON_BEST_CHECKPOINT, path="p", metric=0.5)
    manager.unregister(handles)
    manager.fire(HookEvent.ON_TRAIN_START, run_id="8")
    assert recorder.events == [("start", "7"), ("best", ["metric", "path"])]
    assert not manager.has_hooks(HookEvent.ON_TRAIN_START)


def test_decorator_registration_and_several_events():
    manager = HookManager()
    calls = []

    @manager.register([HookEvent.ON_EPOCH_START, "epoch_end"])
    def both(ctx):
        calls.append(ctx.event.value)

    manager.fire("epoch_start")
    manager.fire("epoch_end")
    assert calls == ["epoch_start", "epoch_end"]
    manager.unregister(both.__trainforge_hook__)
    assert manager.hooks_for("epoch_start") == []


def test_unknown_event_lists_valid_ones():
    with pytest.raises(HookError, match="unknown hook event 'on_start'"):
        HookManager().register("on_start", lambda ctx: None)
