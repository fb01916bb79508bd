"""Cases, referrals, consent, plans, audit and reports."""
