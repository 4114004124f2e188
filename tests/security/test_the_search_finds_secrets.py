"""The search the other tests rely on finds a planted secret in each kind of place it looks (so their "no
hit" means something), names where, and never shows the secret itself."""

from __future__ import annotations

import base64
import json
import pickle
import subprocess
from pathlib import Path

from .conftest import PrefectRecords, Secrets, basic, search_files, search_prefect, search_runs


def test_a_planted_secret_is_found_in_files_runs_and_prefect_records(tmp_path: Path) -> None:
    secrets = Secrets()
    secrets.add_login("someone", "Pw-planted-1")
    secrets.add_tokens(["tok.en.value"])
    (tmp_path / "home" / ".docker").mkdir(parents=True)
    config = tmp_path / "home" / ".docker" / "config.json"
    config.write_text(json.dumps({"auths": {"h": {"auth": basic("someone", "Pw-planted-1")}}}))
    (tmp_path / "state" / "results").mkdir(parents=True)
    (tmp_path / "state" / "prefect.db").write_bytes(b"\x00\x01SQLite...tok.en.value...")
    # A failed run's error as Prefect keeps it: base64 of a pickle, in lines of 76.
    kept = tmp_path / "state" / "results" / "0123abcd"
    kept.write_bytes(base64.encodebytes(pickle.dumps(RuntimeError("login Pw-planted-1 refused"))))
    run = subprocess.CompletedProcess(["x"], 0, stdout="", stderr="error: Pw-planted-1 refused\n")
    records = PrefectRecords(texts={"logs": '{"message": "a Pw-planted-1 b"}'})

    hits, count = search_files(secrets, [tmp_path / "home", tmp_path / "state"])
    assert count == 3
    assert sorted(hits) == sorted([
        f"password someone in {config}",  # inside the base64
        f"base64 login someone in {config}",
        f"password someone in {kept}",
        f"token #2 in {tmp_path / 'state' / 'prefect.db'}",
    ])  # fmt: skip
    assert "Pw-planted-1" not in kept.read_text()  # found only by decoding
    assert search_files(secrets, [tmp_path / "home"], skip=[config]) == ([], 0)
    assert search_runs(secrets, [run]) == ["password someone in stderr of run 0"]
    assert search_prefect(secrets, records) == ["password someone in Prefect API: logs"]
