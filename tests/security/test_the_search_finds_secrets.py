"""The search the other tests rely on finds a planted secret in each kind of place it looks (so their "no
hit" means something), names where, and never shows the secret itself."""

from __future__ import annotations

import json
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
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "prefect.db").write_bytes(b"\x00\x01SQLite...tok.en.value...")
    run = subprocess.CompletedProcess(["x"], 0, stdout="", stderr="error: Pw-planted-1 refused\n")
    records = PrefectRecords(texts={"logs": '{"message": "a Pw-planted-1 b"}'})

    hits, count = search_files(secrets, [tmp_path / "home", tmp_path / "state"])
    assert count == 2
    assert hits == [f"base64 login someone in {config}", f"token #2 in {tmp_path / 'state' / 'prefect.db'}"]
    assert search_files(secrets, [tmp_path / "home"], skip=[config]) == ([], 0)
    assert search_runs(secrets, [run]) == ["password someone in stderr of run 0"]
    assert search_prefect(secrets, records) == ["password someone in Prefect API: logs"]
