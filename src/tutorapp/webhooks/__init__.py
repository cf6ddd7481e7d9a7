"""The one webhook inbox: every verified delivery of every provider (Lemon
Squeezy, Resend), stored once, applied by a job with attempts, backoff and a
dead-letter state an admin can retry from the back office."""
