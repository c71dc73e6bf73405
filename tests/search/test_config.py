"""Study folders: one per study name, inside the run folder, never shared with another study."""

from __future__ import annotations

import pytest

from core.errors import UserError
from search.config import check_folder_owner, claim_folder, folder_owner, study_folder


def test_every_name_gets_its_own_folder_inside_the_run_folder(tmp_path):
    names = ["small_cnn-digits-pixel7-cpu", "s@rpi4-cpu", "a b", "a_b", "a/b", "..", ".", "../x", "a/../../b"]
    folders = [study_folder(tmp_path, name) for name in names]
    assert len(set(folders)) == len(names)
    assert all(folder.parent == tmp_path and folder.name not in ("", ".", "..") for folder in folders)
    assert folders[0].name == names[0] and folders[1].name == names[1]  # plain names stay as they are


def test_a_folder_of_another_study_is_refused(tmp_path):
    folder = study_folder(tmp_path, "s")
    claim_folder(folder, folder_owner("sqlite:///a.db", "s"))
    claim_folder(folder, folder_owner("sqlite:///a.db", "s"))  # the same study again: fine
    with pytest.raises(UserError, match="belongs to another study"):
        check_folder_owner(folder, folder_owner("postgresql://u:***@db/studies", "s"))
