"""Verify AWS Signature Version 4 on requests to ``AWS_IAM`` routes, as API Gateway does.

The signature is recomputed with botocore's signer from the headers the client signed and the local
credentials, then compared in constant time. Requests signed more than five minutes away from now, with
another access key, for another service, or whose body does not match the signed hash are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from local.runtime.template import ACCOUNT_ID

SIGNATURE_MAX_AGE_SECONDS = 300
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<headers>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)


@dataclass(frozen=True)
class CallerIdentity:
    access_key: str
    account_id: str
    user_arn: str
    user_id: str


def verify_sigv4(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    access_key: str,
    secret_key: str,
    now: float | None = None,
) -> CallerIdentity | None:
    """Recompute the request's SigV4 signature with the local credentials and compare (constant time)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    match = _AUTHORIZATION.fullmatch(lowered.get("authorization", "").strip())
    amz_date = lowered.get("x-amz-date", "")
    if match is None or not amz_date:
        return None
    scope = match.group("credential").split("/")
    if len(scope) != 5 or scope[0] != access_key or scope[3] != "execute-api" or scope[4] != "aws4_request":
        return None
    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None
    if amz_date[:8] != scope[1] or abs((now or time.time()) - signed_at) > SIGNATURE_MAX_AGE_SECONDS:
        return None
    signed_names = match.group("headers").split(";")
    if "host" not in signed_names or any(name not in lowered for name in signed_names):
        return None
    declared_hash = lowered.get("x-amz-content-sha256")
    if declared_hash not in (None, "UNSIGNED-PAYLOAD") and not hmac.compare_digest(
        declared_hash, hashlib.sha256(body).hexdigest()
    ):
        return None
    request = AWSRequest(
        method=method, url=url, data=body, headers={name: lowered[name] for name in signed_names}
    )
    request.context["timestamp"] = amz_date
    signer = _SignedHeadersOnly(Credentials(access_key, secret_key), scope[3], scope[2])
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, match.group("signature")):
        return None
    return CallerIdentity(
        access_key=access_key,
        account_id=ACCOUNT_ID,
        user_arn=f"arn:aws:iam::{ACCOUNT_ID}:user/local",
        user_id="AIDALOCALSTACKUSER01",
    )


class _SignedHeadersOnly(SigV4Auth):  # type: ignore[misc]
    """Canonicalize exactly the headers the client listed in SignedHeaders."""

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        header_map = HTTPHeaders()
        for name, value in request.headers.items():
            header_map[name.lower()] = value
        return header_map
