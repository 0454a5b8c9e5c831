"""An org built from a variant of the package, and faults configured before it starts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from local.common.faults import FaultSettings
from local.common.tls import LocalCA
from local.salesforce import EmulatorSettings, SalesforceEmulator
from local.salesforce.emulator import DEFAULT_METADATA_DIR
from tests.emulators.salesforce.helpers import Api, error


@pytest.fixture(scope="module")
def restricted_org(
    local_ca: LocalCA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SalesforceEmulator]:
    package = tmp_path_factory.mktemp("package") / "salesforce"
    for path in DEFAULT_METADATA_DIR.rglob("*"):
        if path.is_file():
            target = package / path.relative_to(DEFAULT_METADATA_DIR)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    lookup = next(package.glob("**/objects/Billing_Invoice__c/fields/Account__c.field-meta.xml"))
    lookup.write_text(
        lookup.read_text().replace(
            "<deleteConstraint>SetNull</deleteConstraint>", "<deleteConstraint>Restrict</deleteConstraint>"
        )
    )
    settings = EmulatorSettings(faults=FaultSettings(bursts={"SERVER_UNAVAILABLE": 1}))
    with SalesforceEmulator(local_ca, settings=settings, metadata_dir=Path(package)) as emulator:
        yield emulator


def test_faults_set_at_start_apply_after_every_reset(restricted_org: SalesforceEmulator) -> None:
    for _ in range(2):
        restricted_org.control.reset()
        api = Api(restricted_org)
        assert api.get("/limits").status_code == 503
        assert api.get("/limits").status_code == 200


def test_restrict_delete_constraint_is_honoured(restricted_org: SalesforceEmulator) -> None:
    restricted_org.control.reset()
    api = Api(restricted_org)
    api.get("/limits")
    describe = api.get("/sobjects/Billing_Invoice__c/describe").json()
    account_field = next(f for f in describe["fields"] if f["name"] == "Account__c")
    assert account_field["restrictedDelete"] is True
    account = api.create("Account", {"Name": "Acme"})
    invoice = api.create("Billing_Invoice__c", {"Name": "INV-1", "Account__c": account})
    assert error(api.delete(f"/sobjects/Account/{account}"), 400) == {
        "message": "Your attempt to delete Acme could not be completed because it is associated with the "
        "following billing invoices.: INV-1",
        "errorCode": "DELETE_FAILED",
        "fields": [],
    }
    assert api.delete(f"/sobjects/Billing_Invoice__c/{invoice}").status_code == 204
    assert api.delete(f"/sobjects/Account/{account}").status_code == 204
