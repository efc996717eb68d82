"""Constants and small helpers shared by tests (importable, unlike conftest)."""

from __future__ import annotations

from typing import Any

TEST_CORP_ID = "wwtest0000000001"
TEST_SETTINGS = {
    "WECOM_CORP_ID": TEST_CORP_ID,
    "WECOM_CONTACT_SECRET": "contact-secret-for-tests",
    "WECOM_AGENT_ID": "1000002",
    "WECOM_AGENT_SECRET": "agent-secret-for-tests",
    "WECOM_TOKEN": "T0kenForTests",
    "WECOM_ENCODING_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "WECOM_API_BASE": "http://127.0.0.1:9",  # replaced by the emulator's URL where a test uses it
    "WECOM_TIMEOUT": 5.0,
}


def start_session(userid: str, corp_id: str = TEST_CORP_ID) -> str:
    """A committed server-side session for `userid`; the id a signed cookie must carry (needs an app context)."""
    from core.db import db
    from identity.service import start_session as start

    sid = start(corp_id, userid)
    db.session.commit()
    return sid


def sign_in(client: Any, userid: str, csrf: str = "t", corp_id: str = TEST_CORP_ID) -> str:
    """Give the test client `userid`'s signed-in session (as the OAuth callback would); returns the session id."""
    sid = start_session(userid, corp_id)
    with client.session_transaction() as sess:
        sess.update(sid=sid, corp=corp_id, csrf=csrf)
    return sid


def run_tasks(limit: int = 100) -> int:
    """Run the queued local tasks (the auto-tagging rules…) as the worker would, until none is due."""
    from core.tasks import claim_tasks, process_task

    done = 0
    for _ in range(limit):
        ids = claim_tasks("test-worker", 50, 60)
        if not ids:
            break
        for task_id in ids:
            process_task(task_id, "test-worker")
            done += 1
    return done
