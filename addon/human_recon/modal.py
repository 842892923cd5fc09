"""What the add-on's long-running operators share in the UI: a timer that wakes the modal
operator, and Blender's progress bar in the window."""


class TimerModal:
    """Mixin: ``begin_modal`` from ``invoke``, ``end_modal`` when the run ends or is cancelled."""

    _timer = None

    def begin_modal(self, context, interval: float) -> None:
        wm = context.window_manager
        self._timer = wm.event_timer_add(interval, window=context.window)
        wm.progress_begin(0, 100)
        wm.modal_handler_add(self)

    def end_modal(self, context) -> None:
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
