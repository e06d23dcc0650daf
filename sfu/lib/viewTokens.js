'use strict';

// View tokens are per room: HMAC(SFU_VIEW_TOKEN, room), so a link to one room
// does not open the others, and the SFU stores nothing per link.

const crypto = require('crypto');

function viewToken(secret, roomId)
{
	return crypto.createHmac('sha256', secret).update(`room:${roomId}`).digest('base64url').slice(0, 32);
}

module.exports = { viewToken };
