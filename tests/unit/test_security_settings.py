"""Security settings reach every aiokafka client (Tansu 0.6 has no TLS or SASL listener to
test against, so what each client is built with is asserted), and secrets stay secret."""

from __future__ import annotations

import ssl

import pytest
from pydantic import ValidationError

from shared.kafka import make_admin, make_consumer, make_producer
from shared.redis import client_options
from shared.settings import Settings
from tests.servers import make_certs


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


def _clients(settings: Settings):
    producer = make_producer(settings)
    consumer = make_consumer(settings, "scores", group="g")
    admin = make_admin(settings)
    return {"producer": producer.client, "consumer": consumer._client, "admin": admin._client}


async def test_sasl_ssl_with_scram_reaches_producer_consumer_and_admin(certs):
    settings = Settings(
        kafka_bootstrap="broker-1:9096", kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="fraudstream", kafka_sasl_password="s3cret", kafka_ssl_cafile=certs.ca,
    )
    for name, client in _clients(settings).items():
        assert client._security_protocol == "SASL_SSL", name
        assert client._sasl_mechanism == "SCRAM-SHA-512", name
        assert (client._sasl_plain_username, client._sasl_plain_password) == ("fraudstream", "s3cret"), name
        context: ssl.SSLContext = client._ssl_context
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname, name
        assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "fraudstream-test-ca"),),)], name


async def test_mutual_tls_loads_the_client_certificate(certs):
    settings = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=certs.ca,
                        kafka_ssl_certfile=certs.client_cert, kafka_ssl_keyfile=certs.client_key)
    for name, client in _clients(settings).items():
        assert client._security_protocol == "SSL", name
        assert client._ssl_context is not None, name
    with pytest.raises(ssl.SSLError):  # the key must match the certificate: proves the pair was loaded
        make_producer(Settings(kafka_security_protocol="SSL", kafka_ssl_certfile=certs.client_cert,
                               kafka_ssl_keyfile=certs.server_key))


async def test_plaintext_sends_no_credentials():
    for name, client in _clients(Settings(kafka_sasl_username="ignored", kafka_sasl_password="x")).items():
        assert client._security_protocol == "PLAINTEXT", name
        assert client._ssl_context is None and client._sasl_plain_password is None, name


def test_secrets_read_from_files_and_never_shown(tmp_path, monkeypatch):
    (tmp_path / "kafka").write_text("kafka-pw\n")
    (tmp_path / "redis").write_text("redis-pw")
    monkeypatch.setenv("FRAUDSTREAM_KAFKA_SASL_PASSWORD_FILE", str(tmp_path / "kafka"))
    monkeypatch.setenv("FRAUDSTREAM_REDIS_PASSWORD_FILE", str(tmp_path / "redis"))
    settings = Settings()
    assert settings.kafka_sasl_password.get_secret_value() == "kafka-pw"
    assert client_options(settings) == {"password": "redis-pw"}
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    assert "kafka-pw" not in shown and "redis-pw" not in shown


def test_an_environment_secret_wins_over_its_file(tmp_path, monkeypatch):
    (tmp_path / "redis").write_text("from-file")
    monkeypatch.setenv("FRAUDSTREAM_REDIS_PASSWORD_FILE", str(tmp_path / "redis"))
    monkeypatch.setenv("FRAUDSTREAM_REDIS_PASSWORD", "from-env")
    assert Settings().redis_password.get_secret_value() == "from-env"


def test_redis_tls_files_need_a_rediss_url(certs):
    with pytest.raises(ValidationError, match="rediss://"):
        Settings(redis_url="redis://127.0.0.1:6379/0", redis_ssl_cafile=certs.ca)
    options = client_options(Settings(redis_url="rediss://127.0.0.1:6380/0", redis_username="svc",
                                      redis_password="pw", redis_ssl_cafile=certs.ca))
    assert options == {"username": "svc", "password": "pw", "ssl_ca_certs": str(certs.ca)}


def test_unknown_protocol_or_mechanism_is_refused():
    with pytest.raises(ValidationError):
        Settings(kafka_security_protocol="TLS")
    with pytest.raises(ValidationError):
        Settings(kafka_sasl_mechanism="GSSAPI")
