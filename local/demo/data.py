"""A realistic, reproducible data set for the demo: customers and accounts, invoices, credit notes and
estimates with lines, subscriptions, payments applied to invoices, notes."""

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


_PLANS = [("starter", 49), ("growth", 199), ("scale", 790)]
_ADDONS = [("extra-seat", 15), ("priority-support", 120)]


@dataclass(frozen=True)
class BillingSizes:
    customers: int
    invoices: int
    notes: int
    credit_notes: int = 0
    estimates: int = 0
    subscriptions: int = 0
    payments: int = 0  # each pays one invoice, fully or in part (taken from the first invoices)


def _lines(rng: random.Random) -> list[dict[str, Any]]:
    return [
        {"name": name, "quantity": rng.randint(1, 5), "unit_cost": price}
        for name, price in rng.sample(_ITEMS, rng.randint(1, 4))
    ]


def billing_seed(rng: random.Random, sizes: BillingSizes) -> dict[str, Any]:
    """What Invoiced holds before billsync starts."""
    data: dict[str, Any] = {"customers": [], "invoices": [], "notes": []}
    for n in range(sizes.customers):
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

    def customer() -> str:
        return f"@c{rng.randrange(sizes.customers)}"

    totals: list[int] = []
    for n in range(sizes.invoices):
        lines = _lines(rng)
        totals.append(sum(line["quantity"] * line["unit_cost"] for line in lines))
        data["invoices"].append(
            {"ref": f"i{n}", "customer": customer(), "payment_terms": "NET 30", "items": lines}
        )
    for _ in range(sizes.notes):
        data["notes"].append({"customer_id": customer(), "notes": rng.choice(_NOTES)})
    data["credit_notes"] = [
        {"customer": customer(), "items": _lines(rng)[:1]} for _ in range(sizes.credit_notes)
    ]
    data["estimates"] = [
        {"customer": customer(), "payment_terms": "NET 30", "items": _lines(rng)}
        for _ in range(sizes.estimates)
    ]
    if sizes.subscriptions:
        data["plans"] = [
            {
                "id": plan,
                "name": plan.replace("-", " ").title(),
                "currency": "usd",
                "amount": price,
                "interval": "month",
            }
            for plan, price in [*_PLANS, *_ADDONS]
        ]
    data["subscriptions"] = [
        {
            "customer": customer(),
            "plan": rng.choice(_PLANS)[0],
            "quantity": rng.randint(1, 3),
            "addons": [
                {"plan": plan, "quantity": rng.randint(1, 4)}
                for plan, _ in rng.sample(_ADDONS, rng.randint(0, 2))
            ],
        }
        for _ in range(sizes.subscriptions)
    ]
    data["payments"] = []
    for n in range(min(sizes.payments, sizes.invoices)):
        amount = totals[n] if rng.random() < 0.7 else rng.randint(1, totals[n])
        invoice = data["invoices"][n]
        data["payments"].append(
            {
                "customer": invoice["customer"],
                "amount": amount,
                "method": rng.choice(["check", "ach", "wire_transfer", "credit_card"]),
                "reference": f"REF-{n:05d}",
                "applied_to": [{"type": "invoice", "invoice": f"@i{n}", "amount": amount}],
            }
        )
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
