"""Anchoring witnessed checkpoints on an Ethereum-compatible chain (optional, off by default).

One transaction per anchor: a zero-value transaction from the anchoring account to itself whose
calldata is the 32-byte SHA-256 of the checkpoint's text (origin, size, root; no signatures).
Nothing else goes on the chain: no PHI, no identifiers, not even the log's entries. The receipt
we keep is the chain id, the transaction hash and the block number; ``check`` fetches the
transaction again and compares its sender, calldata and block, so a verifier needs only a
JSON-RPC endpoint of the same chain.

Production points ``MEDWEAVE_LEDGER_CHAIN_URL`` at any JSON-RPC endpoint (a permissioned Besu
network, a public L2). The transaction is signed either here, with the account's key in
``MEDWEAVE_LEDGER_CHAIN_KEY_FILE``, or by the endpoint itself for ``MEDWEAVE_LEDGER_CHAIN_ACCOUNT``
(``eth_sendTransaction``): that is how a key held in a KMS or HSM is used, through a signing proxy
such as Web3Signer or EthSigner in front of the node, so the key never reaches this server. The
tests run a chain in process (eth-tester with py-evm).
web3.py is imported lazily: install the ``anchor`` extra (``pip install medweave[anchor]``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medweave.errors import ConfigurationError
from medweave.ledger.note import split_signatures

#: A self-send with 32 bytes of calldata costs 22,280 gas under py-evm's Prague rules (FIELD-NOTES);
#: the limit leaves room for chains that price calldata higher.
GAS_LIMIT = 60_000


class AnchorError(Exception):
    """An anchor that does not check out against the chain (or cannot be read from it)."""


@dataclass(frozen=True)
class Anchored:
    size: int
    digest: bytes  # SHA-256 of the checkpoint text
    chain_id: int
    tx_hash: str  # 0x-prefixed hex
    block: int


def checkpoint_digest(note: str) -> bytes:
    """What goes on the chain for a checkpoint: SHA-256 of its text, without signatures."""
    return hashlib.sha256(split_signatures(note)[0].encode()).digest()


def _web3() -> Any:
    try:
        import web3
    except ImportError:
        raise ConfigurationError(
            "anchoring needs web3.py: pip install 'medweave[anchor]' (or unset MEDWEAVE_LEDGER_CHAIN_URL)"
        ) from None
    return web3


class Chain:
    """An Ethereum-compatible chain reached through web3.py, and the account that anchors.

    ``account`` is a local signer (an eth-account ``LocalAccount``), or None when the endpoint
    signs for ``sender`` (``eth_sendTransaction``: a signing proxy in front of a KMS or HSM)."""

    def __init__(self, w3: Any, account: Any | None = None, *, sender: str | None = None) -> None:
        if (account is None) == (sender is None):
            raise ValueError("give a local account or the address the endpoint signs for, not both")
        self.w3 = w3
        self.account = account
        self.address: str = account.address if account is not None else w3.to_checksum_address(sender)

    @classmethod
    def connect(cls, url: str, *, key_file: Path | None = None, sender: str | None = None) -> Chain:
        """A JSON-RPC endpoint (``http(s)://``) and either a file holding the account's hex private
        key, or the address of an account the endpoint signs for."""
        web3 = _web3()
        w3 = web3.Web3(web3.Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
        if key_file is None:
            if not sender or not web3.Web3.is_address(sender):
                raise ConfigurationError(
                    "anchoring needs a chain key file or the address of a signing account"
                )
            return cls(w3, sender=sender)
        from eth_account import Account

        try:
            key = key_file.read_text(encoding="utf-8").strip()
            account = Account.from_key(key)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"the chain key in {key_file} is unusable: {type(exc).__name__}"
            ) from None
        return cls(w3, account)

    @property
    def chain_id(self) -> int:
        return int(self.w3.eth.chain_id)

    def anchor(self, *, size: int, digest: bytes) -> Anchored:
        """Send the digest and wait for the transaction to be mined."""
        if len(digest) != 32:
            raise ValueError("an anchor is a 32-byte digest")
        eth = self.w3.eth
        address = self.address
        fee = int(eth.gas_price)
        tx: dict[str, Any] = {
            "from": address,
            "to": address,
            "value": 0,
            "data": "0x" + digest.hex(),
            "nonce": eth.get_transaction_count(address, "pending"),
            "chainId": self.chain_id,
            "gas": GAS_LIMIT,
            "maxFeePerGas": 2 * fee + 1,
            "maxPriorityFeePerGas": min(fee, 10**9) or 1,
        }
        if self.account is not None:
            tx_hash = eth.send_raw_transaction(self.account.sign_transaction(tx).raw_transaction)
        else:  # the endpoint (a signing proxy before a KMS or HSM) signs for the sender
            tx_hash = eth.send_transaction(tx)
        receipt = eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        if int(receipt["status"]) != 1:
            raise AnchorError("the anchoring transaction failed on the chain")
        return Anchored(size, digest, self.chain_id, "0x" + bytes(tx_hash).hex(), int(receipt["blockNumber"]))

    def check(self, anchored: Anchored, *, sender: str | None = None) -> None:
        """The transaction exists on this chain, in that block, from ``sender`` (default: our
        account), and carries exactly the digest. Raises ``AnchorError`` otherwise."""
        if anchored.chain_id != self.chain_id:
            raise AnchorError(f"anchored on chain {anchored.chain_id}, this is chain {self.chain_id}")
        try:
            tx = self.w3.eth.get_transaction(anchored.tx_hash)
        except Exception as exc:  # web3 raises its own TransactionNotFound and transport errors
            raise AnchorError(f"transaction {anchored.tx_hash} not found: {type(exc).__name__}") from None
        if bytes(tx["input"]) != anchored.digest:
            raise AnchorError(f"transaction {anchored.tx_hash} carries another digest")
        if tx.get("blockNumber") is None or int(tx["blockNumber"]) != anchored.block:
            raise AnchorError(f"transaction {anchored.tx_hash} is not in block {anchored.block}")
        expected = (sender or self.address).lower()
        if str(tx["from"]).lower() != expected:
            raise AnchorError(f"transaction {anchored.tx_hash} was not sent by the anchoring account")
