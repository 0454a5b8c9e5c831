"""A realistic, reproducible data set for the demo: customers, accounts, invoices with lines, notes."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

_FIRST = [
    "Blue",
    "North",
    "Iron",
    "Bright",
    "Silver",
    "Cedar",
    "Atlas",
    "Summit",
    "Harbor",
    "Pioneer",
    "Granite",
    "Vertex",
]
_SECOND = [
    "Ridge",
    "Field",
    "Works",
    "Labs",
    "Logistics",
    "Foods",
    "Health",
    "Systems",
    "Energy",
    "Media",
    "Partners",
    "Retail",
]
_SUFFIX = ["Ltd", "Inc", "GmbH", "SAS", "LLC", "Co"]
_CITIES = [
    ("Lyon", "FR"),
    ("Austin", "US"),
    ("Leeds", "GB"),
    ("Porto", "PT"),
    ("Denver", "US"),
    ("Ghent", "BE"),
    ("Graz", "AT"),
]
_ITEMS = [
    ("Platform subscription", 490),
    ("Support plan", 120),
    ("Onboarding", 1500),
    ("Extra seats", 35),
    ("Training day", 900),
    ("API add-on", 75),
]
_NOTES = [
    "Asked for consolidated billing.",
    "Prefers invoices by email.",
    "Renewal discussion in Q3.",
    "Disputed a late fee; waived.",
]
_PEOPLE = [
    "Ana Lee",
    "Tom Berg",
    "Ines Costa",
    "Raj Patel",
    "Mia Novak",
    "Leo Martin",
    "Sara Kim",
    "Jon Diaz",
]


@dataclass
class DemoData:
    customers: list[dict[str, Any]]
    invoices_per_customer: list[int]


def company(rng: random.Random, n: int) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_SECOND)} {rng.choice(_SUFFIX)} #{n:03d}"


def billing_seed(rng: random.Random, customers: int, invoices: int, notes: int) -> dict[str, Any]:
    """What Invoiced holds before billsync starts: customers, their invoices (with lines) and notes."""
    data: dict[str, Any] = {"customers": [], "invoices": [], "notes": []}
    for n in range(customers):
        city, country = rng.choice(_CITIES)
        data["customers"].append(
            {
                "ref": f"c{n}",
                "name": company(rng, n),
                "email": f"billing{n}@example.com",
                "city": city,
                "country": country,
            }
        )
    for _ in range(invoices):
        lines = [
            {"name": name, "quantity": rng.randint(1, 5), "unit_cost": price}
            for name, price in rng.sample(_ITEMS, rng.randint(1, 4))
        ]
        data["invoices"].append(
            {"customer": f"@c{rng.randrange(customers)}", "payment_terms": "NET 30", "items": lines}
        )
    for _ in range(notes):
        data["notes"].append({"customer_id": f"@c{rng.randrange(customers)}", "notes": rng.choice(_NOTES)})
    return data


def linked_accounts(customers: list[dict[str, Any]], ids: list[int], source_key: str) -> list[dict[str, Any]]:
    """The Salesforce accounts already linked to those customers (their Invoiced id typed in)."""
    return [
        {
            "Name": c["name"],
            "Billing_Id__c": f"{source_key}:{cid}",
            "BillingCity": c["city"],
            "BillingCountry": c["country"],
        }
        for c, cid in zip(customers, ids, strict=True)
    ]


def new_accounts(rng: random.Random, count: int, start: int) -> list[dict[str, Any]]:
    """Accounts created in Salesforce and marked "Create In Billing"."""
    rows = []
    for n in range(start, start + count):
        city, country = rng.choice(_CITIES)
        rows.append(
            {
                "Name": company(rng, n),
                "Create_In_Billing__c": True,
                "Phone": f"+1 555 01{n % 100:02d}",
                "BillingCity": city,
                "BillingCountry": country,
            }
        )
    return rows


def contacts_for(rng: random.Random, account_ids: list[str]) -> list[dict[str, Any]]:
    rows = []
    for account in account_ids:
        first, last = rng.choice(_PEOPLE).split()
        rows.append(
            {
                "FirstName": first,
                "LastName": last,
                "Email": f"{first.lower()}.{last.lower()}@example.com",
                "Title": "Accounts payable",
                "AccountId": account,
            }
        )
    return rows
