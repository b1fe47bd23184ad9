"""The OpenFlow 1.3 / 1.0 wire codec in one import: ``decode``/``encode`` and the message
classes (message.py), the records they contain (records.py, multipart.py), matches (oxm.py),
actions and instructions (acts.py), stream framing (framing.py), errors (errors.py) and
constants (consts.py).

Pure functions; any thread; cost linear in the bytes handled.
"""
from __future__ import annotations

from . import consts  # noqa: F401
from .acts import decode_actions, decode_instructions, encode_actions, encode_instructions  # noqa: F401
from .errors import FramingError, OFPError, error_reply  # noqa: F401
from .framing import split_messages  # noqa: F401
from .message import (  # noqa: F401
    HEADER, MESSAGES, REGISTRY, BarrierReply, BarrierRequest, EchoReply, EchoRequest, Error, Experimenter,
    FeaturesReply, FeaturesRequest, FlowMod, FlowRemoved, GetAsyncReply, GetAsyncRequest, GetConfigReply,
    GetConfigRequest, GroupMod, Hello, Message, MeterMod, MultipartReply, MultipartRequest, PacketIn, PacketOut,
    PortMod, PortStatus, QueueGetConfigReply, QueueGetConfigRequest, RoleReply, RoleRequest, SetAsync, SetConfig,
    TableMod, decode, encode)
from .multipart import (  # noqa: F401
    MULTIPART, AggregateStats, DescStats, ExperimenterBody, FlowStats, FlowStatsRequest, GroupDesc, GroupFeatures,
    GroupStats, GroupStatsRequest, MeterConfig, MeterFeatures, MeterStats, MeterStatsRequest, PortStats,
    PortStatsRequest, QueueStats, QueueStatsRequest, TableFeatures, TableStats)
from .oxm import Match, check_prereqs, decode_match, decode_match10, encode_match, encode_match10  # noqa: F401
from .records import Bucket, MeterBand, PacketQueue, Port, Record  # noqa: F401
