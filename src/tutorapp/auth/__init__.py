"""Who is calling and what they may do: the principal, the access rules, the
per-role `Annotated` aliases every domain's routes declare. Neutral: it reads the
identity tables (`accounts.models`) and imports no other domain."""
