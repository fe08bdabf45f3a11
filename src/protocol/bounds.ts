/**
 * The protocol's size bounds on client frames (docs/protocol.md §3): one place for the server's
 * schemas (client-frames.ts) and the client SDK's checks before sending (no dependencies, so the
 * browser bundle can import it).
 */
export const MAX_CONTENT_LENGTH = 5000;
export const MAX_ATTACHMENTS = 10;
export const MAX_ATTACHMENT_URL_LENGTH = 2048;
export const MAX_ATTACHMENT_NAME_LENGTH = 255;
export const MAX_CLIENT_MSG_ID = 64;
export const MAX_HISTORY_LIMIT = 100;
export const MAX_LIST_LIMIT = 100;
export const MAX_GROUP_NAME = 100;
/** Ids one group frame may name (`memberIds`, `userIds`); `chat.maxGroupMembers` bounds the group itself. */
export const MAX_MEMBER_IDS = 256;
