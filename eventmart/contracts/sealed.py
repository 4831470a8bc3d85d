"""Personal fields as events carry them since issue 26: sealed under their subject's key
(eventmart.personal_data), `"[erased]"` when the subject was erased before the event was
written, or plaintext in events stored before (every older version is still valid)."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, StringConstraints

from eventmart.contracts.bounds import (
    AddressLine,
    AddressName,
    City,
    DisplayName,
    EmailAddress,
    PostalCode,
)

# Nonce, the longest field's UTF-8 and the tag, in base64: well under this.
MAX_SEALED_LENGTH = 4096


class SealedText(BaseModel):
    """AES-256-GCM under the key `kid`; `ct` is the nonce and the ciphertext, base64url."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enc: Literal["v1"]
    kid: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$", max_length=32)]
    ct: Annotated[
        str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+=*$", max_length=MAX_SEALED_LENGTH)
    ]


Erased = Literal["[erased]"]
SealedEmail = Union[SealedText, Erased, EmailAddress]  # noqa: UP007
SealedDisplayName = Union[SealedText, Erased, DisplayName]  # noqa: UP007
SealedAddressName = Union[SealedText, Erased, AddressName]  # noqa: UP007
SealedAddressLine = Union[SealedText, Erased, AddressLine]  # noqa: UP007
SealedCity = Union[SealedText, Erased, City]  # noqa: UP007
SealedPostalCode = Union[SealedText, Erased, PostalCode]  # noqa: UP007


def same_payload(payload: dict[str, object]) -> dict[str, object]:
    """The upcaster to a version that only lets personal fields be sealed: a plaintext
    payload is a valid payload of the new version as it is."""
    return payload
