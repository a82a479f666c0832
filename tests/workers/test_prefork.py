"""The pool's main process leaves its memory for the children to share: frozen, prepared before each fork."""

from __future__ import annotations

import gc

import cffi.cparser
import pytest

from tests.processes import worker_app_facts
from workers.prefork import share_with_children


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_before_a_fork_the_main_process_freezes_its_objects_so_a_childs_collections_never_write_to_them(
    unfrozen,
):
    assert gc.get_freeze_count() == 0

    share_with_children()

    assert gc.get_freeze_count() > 0


def test_before_a_fork_the_main_process_builds_the_c_parser_billiard_uses_in_every_child(
    unfrozen, monkeypatch
):
    monkeypatch.setattr(cffi.cparser, "_parser_cache", None)

    share_with_children()

    assert cffi.cparser._parser_cache is not None


def test_the_worker_app_prepares_the_fork_on_the_signal_the_pool_sends_before_creating_each_child(settings):
    frozen_before, frozen_after = worker_app_facts(
        settings,
        "[__import__('gc').get_freeze_count(),"
        " __import__('celery.signals').signals.worker_before_create_process.send(sender=None)"
        " and __import__('gc').get_freeze_count()]",
    )

    assert frozen_before == 0
    assert frozen_after > 0
