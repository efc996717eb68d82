"""Constants and small helpers shared by tests (importable, unlike conftest)."""

from __future__ import annotations

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
