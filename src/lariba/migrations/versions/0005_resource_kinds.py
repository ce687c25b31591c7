"""resource kinds: buckets and databases are "available" and "modifying"

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUSES = (
    "'pending','provisioning','running','available','modifying','stopping','stopped',"
    "'deleting','deleted','error'"
)
_OLD_STATUSES = (
    "'pending','provisioning','running','stopping','stopped','deleting','deleted','error'"
)


def _checks(statuses: str, desired: str) -> None:
    op.drop_constraint(op.f("ck_resources_status"), "resources", type_="check")
    op.drop_constraint(op.f("ck_resources_desired_state"), "resources", type_="check")
    op.create_check_constraint(op.f("ck_resources_status"), "resources", f"status IN ({statuses})")
    op.create_check_constraint(
        op.f("ck_resources_desired_state"), "resources", f"desired_state IN ({desired})"
    )


def upgrade() -> None:
    _checks(_STATUSES, "'running','available','stopped','deleted'")


def downgrade() -> None:
    _checks(_OLD_STATUSES, "'running','stopped','deleted'")
