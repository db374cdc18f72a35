"""A typed client for hookline's REST API: ``Client`` (blocking) and ``AsyncClient``.

Resources as attributes (``client.apps``, ``.installations``, ``.endpoints``,
``.events``, ``.deliveries``), answers as the API's own models, lists as lazy
iterators over every page, errors as ``hookline.exceptions``, idempotent calls retried
(see ``Retries``). ``import hookline`` stays cheap: ``hookline.Client`` loads this
package on first use.
"""

from hookline.api.schemas import (
    AppCreated,
    AppOut,
    AttemptOut,
    AttemptOutcome,
    DeliveryOut,
    DeliveryStatus,
    EndpointOut,
    EndpointStats,
    EventDetail,
    EventOut,
    HealthOut,
    InstallationOut,
    RecoverOut,
)
from hookline.client._async import AsyncClient, AsyncPaginator
from hookline.client._http import Page, Retries
from hookline.client._operations import NOT_GIVEN, NotGiven
from hookline.client._sync import Client, Paginator

__all__ = [
    "NOT_GIVEN",
    "AppCreated",
    "AppOut",
    "AsyncClient",
    "AsyncPaginator",
    "AttemptOut",
    "AttemptOutcome",
    "Client",
    "DeliveryOut",
    "DeliveryStatus",
    "EndpointOut",
    "EndpointStats",
    "EventDetail",
    "EventOut",
    "HealthOut",
    "InstallationOut",
    "NotGiven",
    "Page",
    "Paginator",
    "RecoverOut",
    "Retries",
]
