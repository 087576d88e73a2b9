from __future__ import annotations

from processor.db.uow import UnitOfWork
from processor.domain.accounts import Account, Customer, parse_customer_name, parse_email
from processor.domain.errors import CustomerNotFound, DuplicateEmail
from processor.logs import log_event


def register_customer(uow: UnitOfWork, name: str, email: str, actor: str) -> Customer:
    """Register a customer under a new customer number; an email belongs to one customer only."""
    name = parse_customer_name(name)
    email = parse_email(email)
    with uow:
        customer = uow.customers.add(name, email)
        if customer is None:
            raise DuplicateEmail(email)
        uow.audit.add(actor, "customer.registered", "customer", str(customer.number), name=name, email=email)
        uow.commit()
    log_event("customer.registered", customer=customer.number, actor=actor)
    return customer


def get_customer(uow: UnitOfWork, number: int) -> tuple[Customer, list[Account]]:
    """A customer and their accounts."""
    with uow:
        customer = uow.customers.get_by_number(number)
        if customer is None:
            raise CustomerNotFound(number)
        return customer, uow.accounts.list_for_customer(number)
