"""Operations: audit events to the log and to a queue of your own, metrics to OpenTelemetry."""

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from crudauth import AuthUserMixin, CRUDAuth
from crudauth.audit import AuditEvent

engine = create_async_engine(os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///./app.db"))
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class User(AuthUserMixin, Base):
    __tablename__ = "users"


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as db:
        yield db


# 1. The audit log: one JSON object per line on the "crudauth.audit" logger. Route it where your
#    log pipeline reads (here: its own handler on stderr, not mixed with the app's records).
handler = logging.StreamHandler()
handler.setFormatter(logging.Formatter("%(message)s"))
audit_logger = logging.getLogger("crudauth.audit")
audit_logger.addHandler(handler)
audit_logger.setLevel(logging.INFO)
audit_logger.propagate = False

# 2. A sink of your own: a plain callable must be quick, so it only queues the event; a worker
#    task ships the queue to your SIEM, a table or a webhook.
security_events: asyncio.Queue[AuditEvent] = asyncio.Queue(maxsize=10_000)


def to_queue(event: AuditEvent) -> None:
    security_events.put_nowait(event)  # a full queue raises: crudauth logs and counts it


# 3. Metrics: install the SDK's meter provider before crudauth records anything. In production
#    the reader is a PeriodicExportingMetricReader(OTLPMetricExporter()); this example keeps the
#    points in memory so that it runs anywhere.
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

auth = CRUDAuth(
    session=get_session,
    user_model=User,
    SECRET_KEY=os.environ["SECRET_KEY"],
    audit=to_queue,
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await auth.initialize()
    yield
    await auth.shutdown()  # waits (briefly) for async sinks still delivering
    await engine.dispose()


app = FastAPI(lifespan=lifespan)
app.include_router(auth.router)
