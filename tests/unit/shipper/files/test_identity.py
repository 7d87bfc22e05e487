"""A file's identity (shipper/files/identity.py): it covers the first line and stays."""


import os

from shipper.files.identity import FINGERPRINT_BYTES, fingerprint, identity_crc


def test_identity_covers_the_first_line_and_stays(tmp_path):
    p = tmp_path / "f.log"
    p.write_bytes(b'{"first": 1}')
    fd = os.open(p, os.O_RDONLY)
    try:
        assert identity_crc(fd) is None  # first line incomplete
        with open(p, "ab") as f:
            f.write(b"\n")
        first = identity_crc(fd)
        assert first is not None
        with open(p, "ab") as f:
            f.write(b'{"second": 2}\n' * 200)
        assert identity_crc(fd) == first  # growth does not change it
        # while the verification fingerprint grows up to FINGERPRINT_BYTES
        assert fingerprint(fd)[0] == FINGERPRINT_BYTES
    finally:
        os.close(fd)
