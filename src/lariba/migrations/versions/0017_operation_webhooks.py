"""operation webhooks: every state change of an operation as a signed event

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# operation.pending when it is asked for, then operation.running, operation.succeeded or
# operation.failed: queued in the transaction that changes the operation, like resource
# events (migration 0011). The payload is documented in docs/webhooks.md.
_OPERATION_TRIGGER = """
CREATE FUNCTION lariba_operation_webhooks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM lariba_enqueue_webhook_event(
        NEW.project_id,
        'operation.' || NEW.status,
        jsonb_build_object(
            'type', 'operation.' || NEW.status,
            'occurred_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
            'project_id', NEW.project_id,
            'data', jsonb_build_object(
                'operation_id', NEW.id,
                'resource_id', NEW.resource_id,
                'resource_kind', NEW.resource_kind,
                'operation_type', NEW.type,
                'status', NEW.status,
                'error', NEW.error,
                'created_by', jsonb_build_object(
                    'type', NEW.created_by_type,
                    'id', NEW.created_by_id,
                    'label', NEW.created_by_label
                )
            )
        )
    );
    RETURN NULL;
END;
$$;

CREATE TRIGGER operations_webhooks_insert
    AFTER INSERT ON operations
    FOR EACH ROW EXECUTE FUNCTION lariba_operation_webhooks();

CREATE TRIGGER operations_webhooks_update
    AFTER UPDATE OF status ON operations
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION lariba_operation_webhooks();
"""


def upgrade() -> None:
    op.execute(_OPERATION_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER operations_webhooks_update ON operations")
    op.execute("DROP TRIGGER operations_webhooks_insert ON operations")
    op.execute("DROP FUNCTION lariba_operation_webhooks()")
