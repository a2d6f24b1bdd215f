"""The root of the gateway's exceptions.

Each feature package keeps its own exceptions module; every class there derives
from :class:`GatewayError` so a command line or a web handler can catch the whole
family at one place::

    GatewayError
    ├── ConfigError            (gateway.config)
    ├── StoreError             (gateway.store)
    │   └── StoreUnavailable   (the file or the disk: full, locked, damaged, read-only)
    ├── ApiError               (gateway.web.errors: status, error id, details)
    ├── InvalidPhoneNumber     (gateway.phone)
    ├── AmiError               (gateway.pbx.exceptions)
    │   ├── AmiLoginError, AmiActionTimeout, AmiConnectionLost ...
    │   └── ChannelHungUp      (the caller hung up: one type, caught once)
    ├── FlowError              (gateway.ivr)
    ├── SmsError               (gateway.sms)
    ├── CalendarError          (gateway.calendar: a year without holiday data)
    ├── AppealError            (gateway.appeals.exceptions: intake, merge, split, terms)
    └── ReportRefused, OutOfScope, FontMissing  (gateway.reports.errors)
"""


class GatewayError(Exception):
    """Anything the gateway itself reports as a failure with a reason."""
