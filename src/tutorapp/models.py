"""All tables, for Alembic and the tests: import every domain's models here."""

from tutorapp.accounts import models as accounts  # noqa: F401
from tutorapp.core import audit  # noqa: F401
from tutorapp.notifications import models as notifications  # noqa: F401
from tutorapp.core.models import Base

metadata = Base.metadata
