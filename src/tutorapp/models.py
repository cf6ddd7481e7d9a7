"""All tables, for Alembic and the tests: import every domain's models here."""

from tutorapp.accounts import models as accounts  # noqa: F401
from tutorapp.billing import models as billing  # noqa: F401
from tutorapp.core import audit  # noqa: F401
from tutorapp.core.models import Base
from tutorapp.files import models as files  # noqa: F401
from tutorapp.integrations.payments import sandbox as payments_sandbox  # noqa: F401
from tutorapp.jobs import models as jobs  # noqa: F401
from tutorapp.metering import models as metering  # noqa: F401
from tutorapp.notifications import models as notifications  # noqa: F401
from tutorapp.realtime import models as realtime  # noqa: F401
from tutorapp.reviews import models as reviews  # noqa: F401
from tutorapp.scheduling import models as scheduling  # noqa: F401
from tutorapp.tutors import models as tutors  # noqa: F401
from tutorapp.webhooks import models as webhooks  # noqa: F401

metadata = Base.metadata
