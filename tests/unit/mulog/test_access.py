"""An authentication failure, an authorization failure and a missing topic are
told apart, each in one line naming what to change."""

from confluent_kafka import KafkaError

from mulog.access import denial, principal
from mulog.connection import Connection

SCRAM = Connection("k:9093", {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                              "sasl.username": "shipper", "sasl.password": "not-shown-anywhere"})
MTLS = Connection("k:9094", {"security.protocol": "SSL", "ssl.certificate.location": "/etc/mulog/shipper.crt",
                             "ssl.key.location": "/etc/mulog/shipper.key"})


def test_the_principal_as_the_acls_name_it():
    assert principal(SCRAM) == "User:shipper"
    assert principal(MTLS) == "the principal of the client certificate /etc/mulog/shipper.crt"
    assert principal(Connection("k:9092")) == "User:ANONYMOUS"


def test_authentication_names_the_principal_and_the_settings_never_the_password():
    err = KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error: Authentication failed during "
                                                 "authentication due to invalid credentials with SASL mechanism "
                                                 "SCRAM-SHA-512")
    line = denial(err, SCRAM, "Write", "mulog_t")
    assert line.startswith("Kafka at k:9093 did not accept the credentials of User:shipper: authentication failed")
    assert "sasl.password" in line and "not-shown-anywhere" not in line


def test_authorization_names_the_operation_the_topic_and_the_acl_to_add():
    err = KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "Broker: Topic authorization failed")
    line = denial(err, SCRAM, "Write", "mulog_t")
    assert line.startswith("User:shipper is not allowed to Write topic mulog_t at k:9093 (")
    assert line.endswith("kafka-acls --add --allow-principal User:shipper --operation Write --topic mulog_t")
    group = KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED, "Broker: Group authorization failed")
    assert "is not allowed to Read group mtga " in denial(group, SCRAM, "Read", "t", group="mtga")
    assert "--operation Read --group mtga" in denial(group, SCRAM, "Read", "t", group="mtga")


def test_a_missing_topic_is_not_an_acl_matter():
    err = KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, "Subscribed topic not available: mulog_x: Broker: Unknown "
                                                       "topic or partition")
    assert denial(err, SCRAM, "Read") == ("topic mulog_x does not exist at k:9093 (Subscribed topic not available: "
                                          "mulog_x: Broker: Unknown topic or partition); create it, or fix the name")


def test_other_errors_are_not_denials():
    assert denial(KafkaError(KafkaError._TRANSPORT, "Connection refused"), SCRAM, "Write") is None
    assert denial(KafkaError(KafkaError._MSG_TIMED_OUT, "timed out"), SCRAM, "Write") is None
