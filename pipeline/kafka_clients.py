"""How every Kafka client of the project connects: one security configuration for all of them.

Managed clusters (Confluent Cloud, MSK, Aiven) want TLS, usually with SASL. The settings hold
it once (``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_*``, ``KAFKA_SSL_*``), and each client gets
it from here: :func:`client_kwargs` for aiokafka and kafka-python clients (the two libraries
share these argument names), :func:`faust_credentials` for the Faust app. Code that holds no
``Settings`` (helpers given only a bootstrap string) gets the process environment's, which is
also what a worker or connector child process receives (``Settings.to_env``).
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from pipeline.settings import Settings

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of the SSL protocols (None for plaintext): the CA file or the system's
    trust store, the optional client certificate, hostname verification unless turned off."""
    if not settings.tls:
        return None
    context = ssl.create_default_context(cafile=str(settings.ssl_ca_file) if settings.ssl_ca_file else None)
    context.check_hostname = settings.ssl_check_hostname
    if settings.ssl_cert_file and settings.ssl_key_file:
        password = settings.ssl_key_password.get_secret_value() if settings.ssl_key_password else None
        context.load_cert_chain(str(settings.ssl_cert_file), str(settings.ssl_key_file), password)
    return context


def client_kwargs(settings: Settings | None = None) -> dict[str, Any]:
    """Security keyword arguments for an aiokafka or kafka-python producer, consumer or admin."""
    s = settings if settings is not None else Settings.from_env()
    kwargs: dict[str, Any] = {"security_protocol": s.security_protocol}
    if s.tls:
        kwargs["ssl_context"] = ssl_context(s)
    if s.security_protocol.startswith("SASL_"):
        assert s.sasl_password is not None  # the settings model refuses SASL without credentials
        kwargs.update(sasl_mechanism=s.sasl_mechanism, sasl_plain_username=s.sasl_username,
                      sasl_plain_password=s.sasl_password.get_secret_value())
    return kwargs


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """Faust's ``broker_credentials`` for the same configuration (None: plaintext)."""
    from faust.auth import SASLCredentials, SSLCredentials

    if settings.security_protocol.startswith("SASL_"):
        assert settings.sasl_password is not None
        return SASLCredentials(username=settings.sasl_username, password=settings.sasl_password.get_secret_value(),
                               mechanism=settings.sasl_mechanism, ssl_context=ssl_context(settings))
    if settings.tls:
        return SSLCredentials(ssl_context(settings))
    return None
