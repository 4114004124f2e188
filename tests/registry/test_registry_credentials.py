# mypy: allow-untyped-defs, allow-untyped-calls, allow-incomplete-defs
import pickle

from docker_image_pusher.registry import Credentials


def test_repr_and_str_hide_the_password():
    creds = Credentials("alice", "hunter2-secret")
    assert "hunter2-secret" not in repr(creds)
    assert "hunter2-secret" not in str(creds)
    assert "hunter2-secret" not in f"{[creds]}"
    assert "alice" in repr(creds)


def test_basic_authorization_header():
    assert Credentials("Aladdin", "open sesame").basic_authorization() == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="


def test_credentials_are_values():
    assert Credentials("a", "b") == Credentials("a", "b")
    assert pickle.loads(pickle.dumps(Credentials("a", "b"))) == Credentials("a", "b")
