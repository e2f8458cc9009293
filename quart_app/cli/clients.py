"""``quart-app create-client NAME``, ``list-clients``, ``rotate-client-secret NAME`` and
``delete-client NAME``: the services allowed the client_credentials grant."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..security.clients import CLIENT_ID, new_secret
from ..store.oauth import ClientExists, ClientRecord, ClientStore
from .context import run_with_services

if TYPE_CHECKING:
    from ..services import Services


def _checked(name: str) -> str:
    if not CLIENT_ID.fullmatch(name):
        raise click.ClickException(
            f"client id {name!r}: 1 to 64 characters of letters, digits, '.', '_' and '-',"
            " starting with a letter or digit"
        )
    return name


@click.command("create-client")
@click.argument("name")
def create_client(name: str) -> None:
    """Create a client (its id is NAME) and print its secret, once: it is stored hashed."""

    client_id = _checked(name)
    secret, stored = new_secret()

    async def work(svc: Services) -> None:
        try:
            await ClientStore(svc.db).create(client_id, stored)
        except ClientExists:
            raise click.ClickException(f"client {client_id!r} already exists") from None

    run_with_services(work)
    click.echo(f"client_id: {client_id}")
    click.echo(f"client_secret: {secret}")
    click.echo("The secret is shown only now: store it where the client reads it.", err=True)


@click.command("list-clients")
def list_clients() -> None:
    """List the clients (id, created, secret last set); never their secrets."""

    async def work(svc: Services) -> list[ClientRecord]:
        return await ClientStore(svc.db).all()

    for record in run_with_services(work):
        click.echo(
            f"{record.client_id}\tcreated {record.created_at.isoformat(timespec='seconds')}"
            f"\tsecret set {record.rotated_at.isoformat(timespec='seconds')}"
        )


@click.command("rotate-client-secret")
@click.argument("name")
def rotate_client_secret(name: str) -> None:
    """Give a client a new secret (printed once); the old one stops working at once."""

    client_id = _checked(name)
    secret, stored = new_secret()

    async def work(svc: Services) -> bool:
        return await ClientStore(svc.db).set_secret(client_id, stored)

    if not run_with_services(work):
        raise click.ClickException(f"no client {client_id!r}")
    click.echo(f"client_id: {client_id}")
    click.echo(f"client_secret: {secret}")


@click.command("delete-client")
@click.argument("name")
def delete_client(name: str) -> None:
    """Delete a client: it gets no new token (the ones it holds live until they expire)."""

    client_id = _checked(name)

    async def work(svc: Services) -> bool:
        return await ClientStore(svc.db).delete(client_id)

    if not run_with_services(work):
        raise click.ClickException(f"no client {client_id!r}")
    click.echo(f"deleted client {client_id}")


COMMANDS = (create_client, list_clients, rotate_client_secret, delete_client)
