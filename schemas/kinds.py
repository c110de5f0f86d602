"""The canonical event kinds every connector parses into, with their attributes.

Journey entry criteria and SLA rules are written against these names. A parser
may add attributes; it must not rename these.

Identifier namespaces (``LifecycleEvent.identifiers``, ``namespace:value``):
``hubspot.company``, ``hubspot.contact``, ``hubspot.deal``, ``salesforce.account``,
``salesforce.lead``, ``salesforce.contact``, ``salesforce.opportunity``,
``stripe.customer``, ``segment.group``, ``segment.user``, ``segment.anonymous``,
``zendesk.organization``, ``zendesk.user``, ``zendesk.ticket`` (linked to its organization by
the creating audit), ``domain`` (an email/web domain,
the fallback rule). Account-level ids come first in the list.
"""

from __future__ import annotations

KINDS: dict[str, str] = {
    # --- CRM (HubSpot, Salesforce) -------------------------------------------------
    "crm.company_updated": "Company/Account created or changed. attrs: name, domain, segment, owner_id, changed (list of property names)",
    "crm.contact_created": "Contact/Lead created. attrs: lifecycle_stage (raw), owner_id",
    "crm.lead_qualified": "Lead/contact/company reached a qualification. attrs: qualification ('mql'|'sql'), raw_value, property",
    "crm.lifecycle_stage_changed": "Other lifecycle stage changes (lead, subscriber, opportunity, customer, evangelist, other). attrs: lifecycle_stage, raw_value",
    "crm.lead_status_changed": "Lead status changed (hs_lead_status, Salesforce Lead.Status). attrs: status (raw, as given), owner_id",
    "crm.opportunity_created": "Deal/Opportunity created. attrs: deal_id, deal_name, amount, currency, stage, deal_type ('new_business'|'renewal'|'expansion'), segment, owner_id, promised_time_to_value (e.g. '48 hours')",
    "crm.deal_stage_changed": "Deal stage changed (not to won/lost). attrs: deal_id, stage (normalized lower-case, no spaces), raw_stage, amount, owner_id",
    "crm.deal_won": "Deal closed won. attrs: deal_id, amount, currency, close_date, deal_type, segment, owner_id, promised_time_to_value",
    "crm.deal_lost": "Deal closed lost. attrs: deal_id, reason, owner_id",
    "crm.owner_changed": "Owner of company/deal/contact changed. attrs: object ('company'|'deal'|'contact'), owner_id, previous_owner_id",
    "crm.activity_logged": "Meeting/call/email/task logged. attrs: activity_type ('kickoff'|'welcome'|'meeting'|'call'|'email'|'renewal'|'qbr'|'referral'|'review'|'case_study'|'note'), subject, owner_id",
    # --- Billing (Stripe) ---------------------------------------------------------
    "billing.customer_created": "Stripe customer.created. attrs: customer_id, email_domain, livemode",
    "billing.subscription_created": "attrs: subscription_id, status, plan_id, plan_interval ('month'|'year'), amount (minor units, per interval), currency, current_period_start, current_period_end, livemode",
    "billing.subscription_updated": "attrs: as subscription_created plus change ('expansion'|'contraction'|'renewal'|'status_change'|'other'), previous_amount, previous_status",
    "billing.subscription_canceled": "customer.subscription.deleted. attrs: subscription_id, canceled_at, cancellation_reason, livemode",
    "billing.invoice_paid": "attrs: invoice_id, subscription_id, amount_paid, currency, billing_reason ('subscription_create'|'subscription_cycle'|'subscription_update'|'manual'), plan_interval, period_start, period_end, livemode",
    "billing.invoice_payment_failed": "attrs: invoice_id, subscription_id, amount_due, attempt_count, livemode",
    # --- Product usage (Segment) -------------------------------------------------
    "product.track": "Segment track. attrs: event (the event name), properties (dict)",
    "product.identify": "Segment identify. attrs: traits (dict, emails removed to person)",
    "product.group": "Segment group. attrs: traits (dict)",
    "product.page": "Segment page/screen. attrs: name, properties",
    # --- Support (Zendesk) ---------------------------------------------------------
    "support.ticket_created": "attrs: ticket_id, status, priority, subject, via",
    "support.ticket_updated": "attrs: ticket_id, status, previous_status, priority",
    "support.ticket_solved": "attrs: ticket_id, priority",
    "support.satisfaction_rated": "attrs: ticket_id, score ('good'|'bad'), comment",
}
