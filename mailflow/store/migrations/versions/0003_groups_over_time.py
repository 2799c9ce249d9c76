"""groups over time: facilitator updates and terms, digest preferences, group end dates, group tokens

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 18:25:33.568699
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "facilitator_terms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("ended_reason", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"]),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"]),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("facilitator_terms", schema=None) as batch_op:
        batch_op.create_index("ix_facilitator_terms_group_contact", ["group_id", "contact_id"], unique=False)
    # Facilitators from before this revision: a term from each facilitator membership, ended if they left.
    op.execute(
        "INSERT INTO facilitator_terms"
        " (group_id, contact_id, organisation_id, started_at, ended_at, ended_reason)"
        " SELECT group_id, contact_id, organisation_id, joined_at, left_at,"
        " CASE WHEN status = 'left' THEN 'left' ELSE '' END"
        " FROM memberships WHERE role = 'facilitator'"
    )
    op.create_table(
        "group_updates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("author", sa.String(length=320), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("inbound_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
        ),
        sa.ForeignKeyConstraint(
            ["inbound_id"],
            ["inbound_messages.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("group_updates", schema=None) as batch_op:
        batch_op.create_index("ix_group_updates_group_created", ["group_id", "created_at"], unique=False)

    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("digest", sa.String(length=10), server_default="weekly", nullable=False)
        )

    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ends_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("closed_at", sa.DateTime(), nullable=True))

    with op.batch_alter_table("reply_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("group_id", sa.Integer(), nullable=True))
        batch_op.alter_column("request_id", existing_type=sa.INTEGER(), nullable=True)
        batch_op.create_foreign_key("fk_reply_tokens_group_id", "groups", ["group_id"], ["id"])


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("reply_tokens", schema=None) as batch_op:
        batch_op.drop_constraint("fk_reply_tokens_group_id", type_="foreignkey")
        batch_op.alter_column("request_id", existing_type=sa.INTEGER(), nullable=False)
        batch_op.drop_column("group_id")

    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.drop_column("closed_at")
        batch_op.drop_column("ends_at")

    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("digest")

    with op.batch_alter_table("group_updates", schema=None) as batch_op:
        batch_op.drop_index("ix_group_updates_group_created")

    op.drop_table("group_updates")
    op.drop_table("facilitator_terms")
