"""Certificates for one test cluster: a CA, the API server's serving certificate, the
service-account signing keys and an admin client certificate in group ``system:masters``."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_KEY = "ca.key"
"""The CA's key, beside ``ca.crt`` in the folder of :func:`make_cluster_certs`."""


@attrs.frozen
class ClusterCerts:
    ca_cert: Path
    serving_cert: Path
    serving_key: Path
    sa_public: Path
    sa_private: Path
    admin_cert: Path
    admin_key: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(parts)


def _issue(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        # Python 3.13 verifies strictly (VERIFY_X509_STRICT): key identifiers are required.
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("kubernetes.default.svc"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_cluster_certs(folder: Path) -> ClusterCerts:
    folder.mkdir(parents=True, exist_ok=True)
    out = ClusterCerts(
        ca_cert=folder / "ca.crt",
        serving_cert=folder / "apiserver.crt",
        serving_key=folder / "apiserver.key",
        sa_public=folder / "sa.pub",
        sa_private=folder / "sa.key",
        admin_cert=folder / "admin.crt",
        admin_key=folder / "admin.key",
    )
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("transporter-testbed-ca")
    ca = _issue(ca_name, ca_key.public_key(), ca_name, ca_key, ca=True)
    out.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    _write_key(folder / CA_KEY, ca_key)  # for issue_client_cert (the controllers' certificates)

    serving_key = ec.generate_private_key(ec.SECP256R1())
    serving = _issue(
        _name("kube-apiserver"), serving_key.public_key(), ca_name, ca_key, server=True
    )
    out.serving_cert.write_bytes(serving.public_bytes(serialization.Encoding.PEM))
    _write_key(out.serving_key, serving_key)

    admin_key = ec.generate_private_key(ec.SECP256R1())
    admin = _issue(_name("admin", "system:masters"), admin_key.public_key(), ca_name, ca_key)
    out.admin_cert.write_bytes(admin.public_bytes(serialization.Encoding.PEM))
    _write_key(out.admin_key, admin_key)

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(out.sa_private, sa_key)
    out.sa_public.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return out


def issue_client_cert(
    certs: ClusterCerts, common_name: str, organization: str | None = None
) -> tuple[Path, Path]:
    """A client certificate (and its key) from the cluster's CA, written beside ``ca.crt`` as
    ``<common_name>.crt`` and ``.key`` (``:`` made ``-``): kube-controller-manager's,
    kube-scheduler's and kwok's own identities."""
    folder = certs.ca_cert.parent
    loaded = serialization.load_pem_private_key((folder / CA_KEY).read_bytes(), password=None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    ca = x509.load_pem_x509_certificate(certs.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    made = _issue(_name(common_name, organization), key.public_key(), ca.subject, loaded)
    stem = common_name.replace(":", "-")
    cert_path, key_path = folder / f"{stem}.crt", folder / f"{stem}.key"
    cert_path.write_bytes(made.public_bytes(serialization.Encoding.PEM))
    _write_key(key_path, key)
    return cert_path, key_path
