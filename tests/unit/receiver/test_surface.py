"""The public surface of ``hookline.receiver`` is what ``__all__`` says, kept sorted."""

from __future__ import annotations

import hookline.receiver as receiver


def test_all_is_sorted_and_importable() -> None:
    assert receiver.__all__ == sorted(receiver.__all__)
    for name in receiver.__all__:
        assert getattr(receiver, name) is not None


def test_the_fixed_interface_points() -> None:
    from hookline.receiver import Receiver

    r = Receiver(keys=["k"], database="sqlite:///:memory:")
    assert r.on("order_completed")(print) is print
    assert r.on("*")(repr) is repr
    assert r.handlers_for("order_completed") == [print, repr]
    assert r.handlers_for("product_created") == [repr]
