from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
EVENT_TYPE_EXPIRED: EventType
EVENT_TYPE_REGISTERED: EventType
EVENT_TYPE_REMOVED: EventType
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_UPDATED: EventType

class CreateTableRequest(_message.Message):
    __slots__ = ["max_sessions", "table"]
    MAX_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    max_sessions: int
    table: str
    def __init__(self, table: _Optional[str] = ..., max_sessions: _Optional[int] = ...) -> None: ...

class CreateTableResponse(_message.Message):
    __slots__ = ["created", "table"]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    created: bool
    table: Table
    def __init__(self, table: _Optional[_Union[Table, _Mapping]] = ..., created: bool = ...) -> None: ...

class DeleteTableRequest(_message.Message):
    __slots__ = ["force", "table"]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    force: bool
    table: str
    def __init__(self, table: _Optional[str] = ..., force: bool = ...) -> None: ...

class DeleteTableResponse(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class GetServerInfoRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class GetServerInfoResponse(_message.Message):
    __slots__ = ["store", "store_available", "version"]
    STORE_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    store: str
    store_available: bool
    version: str
    def __init__(self, version: _Optional[str] = ..., store: _Optional[str] = ..., store_available: bool = ...) -> None: ...

class GetTableRequest(_message.Message):
    __slots__ = ["table"]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    table: str
    def __init__(self, table: _Optional[str] = ...) -> None: ...

class GetTableResponse(_message.Message):
    __slots__ = ["table"]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    table: Table
    def __init__(self, table: _Optional[_Union[Table, _Mapping]] = ...) -> None: ...

class KeepAliveRequest(_message.Message):
    __slots__ = ["id", "table"]
    ID_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    id: str
    table: str
    def __init__(self, table: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class KeepAliveResponse(_message.Message):
    __slots__ = ["session"]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: Session
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ["page_size", "page_token", "table"]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    table: str
    def __init__(self, table: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ["next_page_token", "revision", "sessions", "table_uid", "total_size"]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    TABLE_UID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    next_page_token: str
    revision: int
    sessions: _containers.RepeatedCompositeFieldContainer[Session]
    table_uid: str
    total_size: int
    def __init__(self, sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ..., revision: _Optional[int] = ..., table_uid: _Optional[str] = ...) -> None: ...

class ListTablesRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class ListTablesResponse(_message.Message):
    __slots__ = ["tables"]
    TABLES_FIELD_NUMBER: _ClassVar[int]
    tables: _containers.RepeatedCompositeFieldContainer[Table]
    def __init__(self, tables: _Optional[_Iterable[_Union[Table, _Mapping]]] = ...) -> None: ...

class LookupRequest(_message.Message):
    __slots__ = ["id", "name", "project_path", "table"]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_PATH_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    project_path: str
    table: str
    def __init__(self, table: _Optional[str] = ..., id: _Optional[str] = ..., project_path: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class LookupResponse(_message.Message):
    __slots__ = ["session"]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: Session
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ...) -> None: ...

class RegisterRequest(_message.Message):
    __slots__ = ["request_id", "session", "table"]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    session: Session
    table: str
    def __init__(self, table: _Optional[str] = ..., session: _Optional[_Union[Session, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ["session"]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: Session
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ...) -> None: ...

class RemoveRequest(_message.Message):
    __slots__ = ["allow_missing", "expected_revision", "id", "request_id", "table", "table_uid"]
    ALLOW_MISSING_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    TABLE_UID_FIELD_NUMBER: _ClassVar[int]
    allow_missing: bool
    expected_revision: int
    id: str
    request_id: str
    table: str
    table_uid: str
    def __init__(self, table: _Optional[str] = ..., id: _Optional[str] = ..., expected_revision: _Optional[int] = ..., allow_missing: bool = ..., request_id: _Optional[str] = ..., table_uid: _Optional[str] = ...) -> None: ...

class RemoveResponse(_message.Message):
    __slots__ = ["session"]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: Session
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ["create_time", "expire_time", "id", "metadata", "name", "project_path", "revision", "table_uid", "ttl", "update_time"]
    class MetadataEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_PATH_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    TABLE_UID_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    create_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    id: str
    metadata: _containers.ScalarMap[str, str]
    name: str
    project_path: str
    revision: int
    table_uid: str
    ttl: _duration_pb2.Duration
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., project_path: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., revision: _Optional[int] = ..., ttl: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., expire_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., table_uid: _Optional[str] = ...) -> None: ...

class Table(_message.Message):
    __slots__ = ["create_time", "max_sessions", "name", "revision", "session_count", "table_uid"]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    MAX_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SESSION_COUNT_FIELD_NUMBER: _ClassVar[int]
    TABLE_UID_FIELD_NUMBER: _ClassVar[int]
    create_time: _timestamp_pb2.Timestamp
    max_sessions: int
    name: str
    revision: int
    session_count: int
    table_uid: str
    def __init__(self, name: _Optional[str] = ..., max_sessions: _Optional[int] = ..., session_count: _Optional[int] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., revision: _Optional[int] = ..., table_uid: _Optional[str] = ...) -> None: ...

class UpdateRequest(_message.Message):
    __slots__ = ["expected_revision", "request_id", "session", "table", "table_uid", "update_mask"]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    TABLE_UID_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    expected_revision: int
    request_id: str
    session: Session
    table: str
    table_uid: str
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, table: _Optional[str] = ..., session: _Optional[_Union[Session, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., expected_revision: _Optional[int] = ..., request_id: _Optional[str] = ..., table_uid: _Optional[str] = ...) -> None: ...

class UpdateResponse(_message.Message):
    __slots__ = ["session"]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: Session
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ...) -> None: ...

class WatchEvent(_message.Message):
    __slots__ = ["session", "type"]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    session: Session
    type: EventType
    def __init__(self, type: _Optional[_Union[EventType, str]] = ..., session: _Optional[_Union[Session, _Mapping]] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ["start_revision", "table", "table_uid"]
    START_REVISION_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    TABLE_UID_FIELD_NUMBER: _ClassVar[int]
    start_revision: int
    table: str
    table_uid: str
    def __init__(self, table: _Optional[str] = ..., start_revision: _Optional[int] = ..., table_uid: _Optional[str] = ...) -> None: ...

class WatchResponse(_message.Message):
    __slots__ = ["event", "revision", "snapshot", "table_uid"]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    TABLE_UID_FIELD_NUMBER: _ClassVar[int]
    event: WatchEvent
    revision: int
    snapshot: WatchSnapshot
    table_uid: str
    def __init__(self, revision: _Optional[int] = ..., table_uid: _Optional[str] = ..., snapshot: _Optional[_Union[WatchSnapshot, _Mapping]] = ..., event: _Optional[_Union[WatchEvent, _Mapping]] = ...) -> None: ...

class WatchSnapshot(_message.Message):
    __slots__ = ["sessions"]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[Session]
    def __init__(self, sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ...) -> None: ...

class WatchTablesRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class WatchTablesResponse(_message.Message):
    __slots__ = ["deleted_tables", "snapshot", "tables"]
    DELETED_TABLES_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    TABLES_FIELD_NUMBER: _ClassVar[int]
    deleted_tables: _containers.RepeatedScalarFieldContainer[str]
    snapshot: bool
    tables: _containers.RepeatedCompositeFieldContainer[Table]
    def __init__(self, snapshot: bool = ..., tables: _Optional[_Iterable[_Union[Table, _Mapping]]] = ..., deleted_tables: _Optional[_Iterable[str]] = ...) -> None: ...

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
