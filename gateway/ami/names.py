"""AMI action, event and header names, and AGI command words, in one place.

Spelling is Asterisk 22's, byte for byte: note ``CommandID`` in the client's
``AGI`` action but ``CommandId`` in the ``AsyncAGIExec`` event.
"""

from typing import Final

BANNER: Final = "Asterisk Call Manager/11.0.0"

# Actions
ACTION_LOGIN: Final = "Login"
ACTION_LOGOFF: Final = "Logoff"
ACTION_CHALLENGE: Final = "Challenge"
ACTION_PING: Final = "Ping"
ACTION_EVENTS: Final = "Events"
ACTION_COMMAND: Final = "Command"
ACTION_ORIGINATE: Final = "Originate"
ACTION_HANGUP: Final = "Hangup"
ACTION_STATUS: Final = "Status"
ACTION_CORE_SHOW_CHANNELS: Final = "CoreShowChannels"
ACTION_QUEUE_STATUS: Final = "QueueStatus"
ACTION_QUEUE_ADD: Final = "QueueAdd"
ACTION_MIX_MONITOR: Final = "MixMonitor"
ACTION_AGI: Final = "AGI"

# Events
EV_FULLY_BOOTED: Final = "FullyBooted"
EV_SHUTDOWN: Final = "Shutdown"
EV_NEWCHANNEL: Final = "Newchannel"
EV_NEWSTATE: Final = "Newstate"
EV_NEWEXTEN: Final = "Newexten"
EV_NEWCALLERID: Final = "NewCallerid"
EV_VARSET: Final = "VarSet"
EV_HANGUP: Final = "Hangup"
EV_HANGUP_REQUEST: Final = "HangupRequest"
EV_SOFT_HANGUP_REQUEST: Final = "SoftHangupRequest"
EV_DIAL_BEGIN: Final = "DialBegin"
EV_DIAL_END: Final = "DialEnd"
EV_DTMF_BEGIN: Final = "DTMFBegin"
EV_DTMF_END: Final = "DTMFEnd"
EV_ORIGINATE_RESPONSE: Final = "OriginateResponse"
EV_ASYNC_AGI_START: Final = "AsyncAGIStart"
EV_ASYNC_AGI_EXEC: Final = "AsyncAGIExec"
EV_ASYNC_AGI_END: Final = "AsyncAGIEnd"
EV_AGI_EXEC_START: Final = "AGIExecStart"
EV_AGI_EXEC_END: Final = "AGIExecEnd"
EV_QUEUE_CALLER_JOIN: Final = "QueueCallerJoin"
EV_QUEUE_CALLER_LEAVE: Final = "QueueCallerLeave"
EV_QUEUE_CALLER_ABANDON: Final = "QueueCallerAbandon"
EV_AGENT_CALLED: Final = "AgentCalled"
EV_AGENT_CONNECT: Final = "AgentConnect"
EV_AGENT_COMPLETE: Final = "AgentComplete"
EV_AGENT_RINGNOANSWER: Final = "AgentRingNoAnswer"
EV_MIX_MONITOR_START: Final = "MixMonitorStart"
EV_MIX_MONITOR_STOP: Final = "MixMonitorStop"
EV_CDR: Final = "Cdr"
EV_CEL: Final = "CEL"
EV_CORE_SHOW_CHANNEL: Final = "CoreShowChannel"
EV_CORE_SHOW_CHANNELS_COMPLETE: Final = "CoreShowChannelsComplete"
EV_STATUS: Final = "Status"
EV_STATUS_COMPLETE: Final = "StatusComplete"
EV_QUEUE_PARAMS: Final = "QueueParams"
EV_QUEUE_MEMBER: Final = "QueueMember"
EV_QUEUE_MEMBER_STATUS: Final = "QueueMemberStatus"
EV_QUEUE_MEMBER_ADDED: Final = "QueueMemberAdded"
EV_QUEUE_MEMBER_REMOVED: Final = "QueueMemberRemoved"
EV_QUEUE_MEMBER_PAUSE: Final = "QueueMemberPause"
EV_QUEUE_ENTRY: Final = "QueueEntry"
EV_QUEUE_STATUS_COMPLETE: Final = "QueueStatusComplete"

# Headers
H_ACTION: Final = "Action"
H_ACTION_ID: Final = "ActionID"
H_EVENT: Final = "Event"
H_RESPONSE: Final = "Response"
H_MESSAGE: Final = "Message"
H_EVENT_LIST: Final = "EventList"
H_LIST_ITEMS: Final = "ListItems"
H_CHANNEL: Final = "Channel"
H_CHANNEL_STATE: Final = "ChannelState"
H_CHANNEL_STATE_DESC: Final = "ChannelStateDesc"
H_CALLER_ID_NUM: Final = "CallerIDNum"
H_CALLER_ID_NAME: Final = "CallerIDName"
H_CONNECTED_LINE_NUM: Final = "ConnectedLineNum"
H_CONNECTED_LINE_NAME: Final = "ConnectedLineName"
H_CONTEXT: Final = "Context"
H_EXTEN: Final = "Exten"
H_PRIORITY: Final = "Priority"
H_UNIQUEID: Final = "Uniqueid"
H_LINKEDID: Final = "Linkedid"
H_CAUSE: Final = "Cause"
H_CAUSE_TXT: Final = "Cause-txt"
H_DIGIT: Final = "Digit"
H_COMMAND: Final = "Command"
H_COMMAND_ID_ACTION: Final = "CommandID"  # in the client's AGI action
H_COMMAND_ID_EVENT: Final = "CommandId"  # in AsyncAGIExec
H_RESULT: Final = "Result"
H_ENV: Final = "Env"
H_REASON: Final = "Reason"
H_VARIABLE: Final = "Variable"
H_OUTPUT: Final = "Output"
H_VALUE: Final = "Value"  # in VarSet, with Variable
H_APPLICATION: Final = "Application"
H_APP_DATA: Final = "AppData"
H_DIAL_STATUS: Final = "DialStatus"
H_DIAL_STRING: Final = "DialString"
H_DEST_UNIQUEID: Final = "DestUniqueid"
H_DEST_CHANNEL: Final = "DestChannel"
H_DEST_LINKEDID: Final = "DestLinkedid"
H_QUEUE: Final = "Queue"
H_MEMBER_NAME: Final = "MemberName"
H_INTERFACE: Final = "Interface"
H_HOLD_TIME: Final = "HoldTime"
H_DIRECTION: Final = "Direction"  # in DTMFBegin/DTMFEnd: Received or Sent
H_DURATION: Final = "Duration"  # in Cdr (seconds) and CoreShowChannel (HH:MM:SS)
# Cdr (cdr_manager) headers; note ``UniqueID`` (Cdr) against ``Uniqueid`` (channel events)
H_CDR_UNIQUEID: Final = "UniqueID"
H_CDR_SOURCE: Final = "Source"
H_CDR_DESTINATION: Final = "Destination"
H_CDR_START_TIME: Final = "StartTime"
H_CDR_ANSWER_TIME: Final = "AnswerTime"
H_CDR_END_TIME: Final = "EndTime"
H_CDR_BILLABLE_SECONDS: Final = "BillableSeconds"
H_CDR_DISPOSITION: Final = "Disposition"
# CEL headers (cel.conf sending to the manager; class ``call``); note ``UniqueID``/``LinkedID``
H_CEL_EVENT_NAME: Final = "EventName"
H_CEL_EVENT_TIME: Final = "EventTime"  # the PBX's local time, like Cdr times
H_CEL_LINKEDID: Final = "LinkedID"
H_CEL_EXTRA: Final = "Extra"  # JSON, e.g. {"hangupcause":16,"hangupsource":"dialplan/agi",...}
CEL_CHAN_START: Final = "CHAN_START"
CEL_HANGUP: Final = "HANGUP"
# Every event's epoch time when manager.conf has ``timestampevents = yes``
H_TIMESTAMP: Final = "Timestamp"
ACTION_GETVAR: Final = "Getvar"  # without Channel, a dialplan function is read on a dummy one
H_TALK_TIME: Final = "TalkTime"  # AgentComplete
# Login, Originate and Shutdown headers the AMI session writes or reads
H_USERNAME: Final = "Username"
H_SECRET: Final = "Secret"
H_EVENTS: Final = "Events"
H_AUTH_TYPE: Final = "AuthType"
H_KEY: Final = "Key"
H_CHALLENGE: Final = "Challenge"
H_ASYNC: Final = "Async"
H_TIMEOUT: Final = "Timeout"
H_CALLER_ID: Final = "CallerID"
H_RESTART: Final = "Restart"

RESPONSE_SUCCESS: Final = "Success"
RESPONSE_ERROR: Final = "Error"
RESPONSE_GOODBYE: Final = "Goodbye"
RESPONSE_FAILURE: Final = "Failure"

# OriginateResponse Reason codes (Asterisk control frames)
REASON_NO_SUCH_NUMBER: Final = 0
REASON_NO_ANSWER: Final = 1
REASON_RING_TIMEOUT: Final = 3
REASON_ANSWERED: Final = 4
REASON_BUSY: Final = 5
REASON_CONGESTION: Final = 8

# Channel variables
# Set by Asterisk's MixMonitor to the file it records to.
VAR_MIXMONITOR_FILENAME: Final = "MIXMONITOR_FILENAME"
# Set by the gateway on the calls it originates (Originate ``Variable:``):
# GATEWAY_ORIGIN=callback marks the call outbound in the call log, and
# GATEWAY_DIALLED=<number> names the number it dialled.
VAR_GATEWAY_ORIGIN: Final = "GATEWAY_ORIGIN"
VAR_GATEWAY_DIALLED: Final = "GATEWAY_DIALLED"
# Set by the gateway's AMI session on every Originate (the Originate's ActionID), so
# the AsyncAGI channel of an originated call finds the variables it was given.
VAR_GATEWAY_CALL_ID: Final = "GATEWAY_CALL_ID"
