"""Webhook signatures: each vendor's scheme (from its module) and the secrets to check them with.

The verifier is one :class:`~connectors.signing.HmacScheme`; each vendor module holds
its parameters. Secrets come from the settings (:data:`SECRET_ENV` names their
variables) or a mapping the caller passes; a vendor without a secret refuses
everything unless it is explicitly marked ``allow_unsigned`` (local demos only).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from connectors.crm.hubspot import hubspot_uri
from connectors.registry import VENDORS
from connectors.signing import DEFAULT_TOLERANCE, HmacScheme, SignatureError, SignedRequest
from pipeline.settings import WEBHOOK_SECRET_FIELDS, Settings

__all__ = ["SCHEMES", "SECRET_ENV", "HmacScheme", "SignatureConfig", "SignatureError", "SignedRequest", "hubspot_uri"]

SCHEMES: dict[str, HmacScheme] = {v.name: v.signature for v in VENDORS}
SECRET_ENV: dict[str, str] = {v: Settings.env_name(f) for v, f in WEBHOOK_SECRET_FIELDS.items()}


@dataclass
class SignatureConfig:
    """Which secret each vendor's webhook is checked with, and who may send unsigned."""

    secrets: dict[str, str] = field(default_factory=dict)
    allow_unsigned: frozenset[str] = frozenset()
    tolerance: float = DEFAULT_TOLERANCE

    @classmethod
    def from_env(cls, allow_unsigned: frozenset[str] | set[str] = frozenset(), settings: Settings | None = None,
                 tolerance: float = DEFAULT_TOLERANCE) -> SignatureConfig:
        """Each vendor's secret from the settings (its ``SECRET_ENV`` variable); a blank one is none."""
        settings = settings or Settings.from_env()
        secrets = {v: s.get_secret_value() for v in SECRET_ENV if (s := settings.webhook_secret(v))}
        return cls(secrets={v: s for v, s in secrets.items() if s}, allow_unsigned=frozenset(allow_unsigned),
                   tolerance=tolerance)

    def verify(self, vendor: str, req: SignedRequest, now: float | None = None) -> None:
        secret = self.secrets.get(vendor)
        if secret is None:
            if vendor in self.allow_unsigned:
                return
            raise SignatureError("no_secret", f"no secret configured for {vendor} (set {SECRET_ENV.get(vendor, '?')})")
        scheme = SCHEMES.get(vendor)
        if scheme is None:
            raise SignatureError("no_secret", f"no signature scheme for {vendor}")
        scheme.verify(req, secret, tolerance=self.tolerance, now=now)

