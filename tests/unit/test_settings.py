"""Settings: chains as a mapping, defaults filled in, bad values named."""

from __future__ import annotations

import pytest

from indexer.errors import ConfigError
from indexer.settings import DEFAULT_CU_WEIGHTS, load_settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("LOGFILL_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(str(tmp_path))  # no developer .env


def test_chains_come_from_a_json_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "LOGFILL_CHAINS",
        '{"1": {"rpc_url": "https://eth.example", "use_finalized_tag": true,'
        ' "cu_weights": {"eth_getLogs": 75}},'
        ' "31337": {"rpc_url": "http://127.0.0.1:8545", "confirmations": 0, "tick_seconds": 1}}',
    )
    settings = load_settings()
    mainnet, anvil = settings.chains[1], settings.chains[31337]
    assert mainnet.use_finalized_tag is True
    assert mainnet.cu_cost("eth_getLogs") == 75
    assert mainnet.cu_cost("eth_blockNumber") == DEFAULT_CU_WEIGHTS["eth_blockNumber"] == 10
    assert mainnet.cu_cost("eth_chainId") == 10  # unlisted methods
    assert (mainnet.window_budget_cu, mainnet.max_block_range) == (12000, 2000)
    assert (anvil.confirmations, anvil.tick_seconds) == (0, 1.0)


def test_known_chains_default_to_their_finality_and_a_setting_given_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "LOGFILL_CHAINS",
        '{"1": {"rpc_url": "https://eth.example"},'
        ' "8453": {"rpc_url": "https://base.example", "confirmations": 30},'
        ' "31337": {"rpc_url": "http://127.0.0.1:8545"},'
        ' "999999": {"rpc_url": "https://other.example"}}',
    )
    chains = load_settings().chains
    ethereum, base, anvil, unknown = chains[1], chains[8453], chains[31337], chains[999999]
    assert ethereum.use_finalized_tag is True
    assert ethereum.head_read_cu() == 10 + 20  # eth_blockNumber and the finalized block
    assert (base.use_finalized_tag, base.confirmations) == (False, 30)  # as given
    assert (anvil.use_finalized_tag, anvil.confirmations) == (False, 0)
    assert (unknown.use_finalized_tag, unknown.confirmations) == (False, 12)


def test_defaults_need_no_configuration() -> None:
    settings = load_settings()
    assert settings.database_url is None  # the embedded PostgreSQL
    assert settings.chains == {}
    assert (settings.api_host, settings.api_port) == ("127.0.0.1", 8080)
    assert settings.idempotency_ttl_seconds == 24 * 3600
    assert settings.data_dir.is_absolute()


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        (
            "LOGFILL_CHAINS",
            '{"1": {"rpc_url": "http://x", "confirmations": -1}}',
            "LOGFILL_CHAINS[1].confirmations",
        ),
        (
            "LOGFILL_CHAINS",
            '{"1": {"rpc_url": "http://x", "cu_weights": {"eth_getLogs": 0}}}',
            "LOGFILL_CHAINS[1].cu_weights.eth_getLogs",
        ),
        (
            "LOGFILL_CHAINS",
            '{"1": {"rpc_url": "http://x", "window_budget": 5}}',
            "LOGFILL_CHAINS[1].window_budget",
        ),
        ("LOGFILL_CHAINS", '{"0": {"rpc_url": "http://x"}}', "LOGFILL_CHAINS[0]"),
        ("LOGFILL_CHAINS", '{"1": {}}', "LOGFILL_CHAINS[1].rpc_url"),
        ("LOGFILL_LOG_LEVEL", "loud", "LOGFILL_LOG_LEVEL"),
        ("LOGFILL_DB_POOL_MAX_SIZE", "0", "LOGFILL_DB_POOL_MAX_SIZE"),
    ],
)
def test_bad_values_are_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert f"invalid setting {named}" in message
    assert "\n" not in message
