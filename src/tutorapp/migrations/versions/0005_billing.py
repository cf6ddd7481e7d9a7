"""Billing: wallets and credits, subscriptions, payments, webhook inbox, ledger,
earnings, payouts, and the payments sandbox's own store.

Revision ID: 0005
Revises: 0004 (credit spends and earnings refer to bookings)
Create Date: 2026-11-25 15:02:29.030438
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tutorapp.core.models

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('billing_ledger_transactions',
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.Column('reverses_id', sa.Uuid(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['reverses_id'], ['billing_ledger_transactions.id'], name=op.f('fk_billing_ledger_transactions_reverses_id_billing_ledger_transactions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_ledger_transactions')),
    sa.UniqueConstraint('key', name=op.f('uq_billing_ledger_transactions_key'))
    )
    op.create_table('billing_payouts',
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('status', sa.Enum('draft', 'paid', name='payoutstatus', native_enum=False, length=24), nullable=False),
    sa.Column('paid_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_payouts')),
    sa.UniqueConstraint('period', name=op.f('uq_billing_payouts_period'))
    )
    op.create_table('billing_webhook_events',
    sa.Column('dedupe_key', sa.String(length=300), nullable=False),
    sa.Column('event_name', sa.String(length=64), nullable=False),
    sa.Column('resource_type', sa.String(length=40), nullable=False),
    sa.Column('resource_id', sa.String(length=64), nullable=False),
    sa.Column('payload', tutorapp.core.models.JSONDocument(), nullable=False),
    sa.Column('processed_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=200), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_webhook_events')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_billing_webhook_events_dedupe_key'))
    )
    with op.batch_alter_table('billing_webhook_events', schema=None) as batch_op:
        batch_op.create_index('ix_billing_webhook_events_pending', ['processed_at', 'created_at'], unique=False)

    op.create_table('payments_sandbox_objects',
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('attributes', tutorapp.core.models.JSONDocument(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments_sandbox_objects'))
    )
    op.create_table('billing_ledger_postings',
    sa.Column('transaction_id', sa.Uuid(), nullable=False),
    sa.Column('account', sa.String(length=100), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount_minor <> 0', name=op.f('ck_billing_ledger_postings_nonzero')),
    sa.ForeignKeyConstraint(['transaction_id'], ['billing_ledger_transactions.id'], name=op.f('fk_billing_ledger_postings_transaction_id_billing_ledger_transactions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_ledger_postings'))
    )
    with op.batch_alter_table('billing_ledger_postings', schema=None) as batch_op:
        batch_op.create_index('ix_billing_ledger_postings_account', ['account', 'currency'], unique=False)
        batch_op.create_index(batch_op.f('ix_billing_ledger_postings_transaction_id'), ['transaction_id'], unique=False)

    op.create_table('billing_wallets',
    sa.Column('owner_id', sa.Uuid(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_billing_wallets_owner_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_wallets')),
    sa.UniqueConstraint('owner_id', name=op.f('uq_billing_wallets_owner_id'))
    )
    op.create_table('billing_subscriptions',
    sa.Column('provider_id', sa.String(length=64), nullable=False),
    sa.Column('wallet_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('plan_key', sa.String(length=40), nullable=False),
    sa.Column('variant_id', sa.String(length=40), nullable=False),
    sa.Column('status', sa.Enum('on_trial', 'active', 'paused', 'past_due', 'unpaid', 'cancelled', 'expired', name='subscriptionstatus', native_enum=False, length=24), nullable=False),
    sa.Column('cancelled', sa.Boolean(), nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=True),
    sa.Column('renews_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ends_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('trial_ends_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('provider_updated_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('customer_portal_url', sa.String(length=1000), nullable=True),
    sa.Column('update_payment_method_url', sa.String(length=1000), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_billing_subscriptions_user_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['wallet_id'], ['billing_wallets.id'], name=op.f('fk_billing_subscriptions_wallet_id_billing_wallets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_subscriptions')),
    sa.UniqueConstraint('provider_id', name=op.f('uq_billing_subscriptions_provider_id'))
    )
    with op.batch_alter_table('billing_subscriptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_billing_subscriptions_wallet_id'), ['wallet_id'], unique=False)

    op.create_table('billing_payments',
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('provider_id', sa.String(length=64), nullable=False),
    sa.Column('wallet_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('plan_key', sa.String(length=40), nullable=False),
    sa.Column('subscription_id', sa.Uuid(), nullable=True),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('total_minor', sa.BigInteger(), nullable=False),
    sa.Column('tax_minor', sa.BigInteger(), nullable=False),
    sa.Column('refunded_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('invoice_url', sa.String(length=1000), nullable=True),
    sa.Column('paid_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['subscription_id'], ['billing_subscriptions.id'], name=op.f('fk_billing_payments_subscription_id_billing_subscriptions'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_billing_payments_user_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['wallet_id'], ['billing_wallets.id'], name=op.f('fk_billing_payments_wallet_id_billing_wallets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_payments')),
    sa.UniqueConstraint('kind', 'provider_id', name=op.f('uq_billing_payments_kind_provider_id'))
    )
    with op.batch_alter_table('billing_payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_billing_payments_wallet_id'), ['wallet_id'], unique=False)

    op.create_table('billing_checkouts',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('plan_key', sa.String(length=40), nullable=False),
    sa.Column('booking_id', sa.Uuid(), nullable=True),
    sa.Column('provider', sa.String(length=24), nullable=False),
    sa.Column('provider_checkout_id', sa.String(length=64), nullable=True),
    sa.Column('url', sa.String(length=1000), nullable=True),
    sa.Column('paid_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_billing_checkouts_booking_id_bookings'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_billing_checkouts_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_checkouts'))
    )
    with op.batch_alter_table('billing_checkouts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_billing_checkouts_user_id'), ['user_id'], unique=False)

    op.create_table('billing_credit_lots',
    sa.Column('wallet_id', sa.Uuid(), nullable=False),
    sa.Column('source', sa.Enum('subscription', 'package', 'single', 'adjustment', name='lotsource', native_enum=False, length=24), nullable=False),
    sa.Column('source_key', sa.String(length=200), nullable=False),
    sa.Column('plan_key', sa.String(length=40), nullable=True),
    sa.Column('subscription_id', sa.Uuid(), nullable=True),
    sa.Column('payment_id', sa.Uuid(), nullable=True),
    sa.Column('granted', sa.Integer(), nullable=False),
    sa.Column('remaining', sa.Integer(), nullable=False),
    sa.Column('consumed', sa.Integer(), nullable=False),
    sa.Column('value_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('expires_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('expired_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('consumed >= 0 AND consumed <= granted', name=op.f('ck_billing_credit_lots_consumed')),
    sa.CheckConstraint('remaining >= 0 AND remaining <= granted', name=op.f('ck_billing_credit_lots_remaining')),
    sa.ForeignKeyConstraint(['payment_id'], ['billing_payments.id'], name=op.f('fk_billing_credit_lots_payment_id_billing_payments'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['subscription_id'], ['billing_subscriptions.id'], name=op.f('fk_billing_credit_lots_subscription_id_billing_subscriptions'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['wallet_id'], ['billing_wallets.id'], name=op.f('fk_billing_credit_lots_wallet_id_billing_wallets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_credit_lots')),
    sa.UniqueConstraint('source_key', name=op.f('uq_billing_credit_lots_source_key'))
    )
    with op.batch_alter_table('billing_credit_lots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_billing_credit_lots_payment_id'), ['payment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_billing_credit_lots_subscription_id'), ['subscription_id'], unique=False)
        batch_op.create_index('ix_billing_credit_lots_wallet_expires', ['wallet_id', 'expires_at'], unique=False)

    op.create_table('billing_credit_spends',
    sa.Column('booking_id', sa.Uuid(), nullable=False),
    sa.Column('wallet_id', sa.Uuid(), nullable=False),
    sa.Column('lot_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.Enum('reserved', 'consumed', 'returned', name='spendstatus', native_enum=False, length=24), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_billing_credit_spends_booking_id_bookings'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['lot_id'], ['billing_credit_lots.id'], name=op.f('fk_billing_credit_spends_lot_id_billing_credit_lots'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['wallet_id'], ['billing_wallets.id'], name=op.f('fk_billing_credit_spends_wallet_id_billing_wallets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_credit_spends')),
    sa.UniqueConstraint('booking_id', name=op.f('uq_billing_credit_spends_booking_id'))
    )
    with op.batch_alter_table('billing_credit_spends', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_billing_credit_spends_lot_id'), ['lot_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_billing_credit_spends_wallet_id'), ['wallet_id'], unique=False)

    op.create_table('billing_earnings',
    sa.Column('booking_id', sa.Uuid(), nullable=False),
    sa.Column('tutor_user_id', sa.Uuid(), nullable=False),
    sa.Column('spend_id', sa.Uuid(), nullable=False),
    sa.Column('gross_minor', sa.BigInteger(), nullable=False),
    sa.Column('commission_minor', sa.BigInteger(), nullable=False),
    sa.Column('net_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.Enum('pending', 'disputed', 'payable', 'paid', 'reversed', name='earningstatus', native_enum=False, length=24), nullable=False),
    sa.Column('payable_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('confirmed_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('disputed_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('dispute_reason', sa.String(length=1000), nullable=True),
    sa.Column('resolved_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('payout_id', sa.Uuid(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_billing_earnings_booking_id_bookings'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['payout_id'], ['billing_payouts.id'], name=op.f('fk_billing_earnings_payout_id_billing_payouts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['spend_id'], ['billing_credit_spends.id'], name=op.f('fk_billing_earnings_spend_id_billing_credit_spends'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tutor_user_id'], ['users.id'], name=op.f('fk_billing_earnings_tutor_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_earnings')),
    sa.UniqueConstraint('booking_id', name=op.f('uq_billing_earnings_booking_id'))
    )
    with op.batch_alter_table('billing_earnings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_billing_earnings_payout_id'), ['payout_id'], unique=False)
        batch_op.create_index('ix_billing_earnings_status_payable_at', ['status', 'payable_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_billing_earnings_tutor_user_id'), ['tutor_user_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('billing_earnings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billing_earnings_tutor_user_id'))
        batch_op.drop_index('ix_billing_earnings_status_payable_at')
        batch_op.drop_index(batch_op.f('ix_billing_earnings_payout_id'))

    op.drop_table('billing_earnings')
    with op.batch_alter_table('billing_credit_spends', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billing_credit_spends_wallet_id'))
        batch_op.drop_index(batch_op.f('ix_billing_credit_spends_lot_id'))

    op.drop_table('billing_credit_spends')
    with op.batch_alter_table('billing_credit_lots', schema=None) as batch_op:
        batch_op.drop_index('ix_billing_credit_lots_wallet_expires')
        batch_op.drop_index(batch_op.f('ix_billing_credit_lots_subscription_id'))
        batch_op.drop_index(batch_op.f('ix_billing_credit_lots_payment_id'))

    op.drop_table('billing_credit_lots')
    with op.batch_alter_table('billing_checkouts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billing_checkouts_user_id'))

    op.drop_table('billing_checkouts')
    with op.batch_alter_table('billing_payments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billing_payments_wallet_id'))

    op.drop_table('billing_payments')
    with op.batch_alter_table('billing_subscriptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billing_subscriptions_wallet_id'))

    op.drop_table('billing_subscriptions')
    op.drop_table('billing_wallets')
    with op.batch_alter_table('billing_ledger_postings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billing_ledger_postings_transaction_id'))
        batch_op.drop_index('ix_billing_ledger_postings_account')

    op.drop_table('billing_ledger_postings')
    op.drop_table('payments_sandbox_objects')
    with op.batch_alter_table('billing_webhook_events', schema=None) as batch_op:
        batch_op.drop_index('ix_billing_webhook_events_pending')

    op.drop_table('billing_webhook_events')
    op.drop_table('billing_payouts')
    op.drop_table('billing_ledger_transactions')
