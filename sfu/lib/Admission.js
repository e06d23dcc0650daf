'use strict';

// Caps on the viewer sessions anonymous visitors may hold at once: in all (a
// figure that follows from the RTC port range, see lib/config.js), per room and
// per client address. A viewer is admitted or refused before anything is created
// for it, and counted in the same tick as the check, so that a burst of
// simultaneous requests cannot all pass.

const { HttpError } = require('./errors');

const RETRY_AFTER_S = '30';

class Admission
{
	constructor({ maxViewers, maxViewersPerRoom, maxViewersPerIp })
	{
		this._max = { total: maxViewers, room: maxViewersPerRoom, address: maxViewersPerIp };
		this._total = 0;
		this._perRoom = new Map();
		this._perAddress = new Map();
	}

	// Returns release(), which frees the place (calling it again does nothing).
	admitViewer(address, roomId)
	{
		if (this._total >= this._max.total)
		{
			throw new HttpError(503, `the SFU carries its maximum of ${this._max.total} viewers; retry later`,
				{ 'Retry-After': RETRY_AFTER_S });
		}
		if ((this._perRoom.get(roomId) || 0) >= this._max.room)
		{
			throw new HttpError(503, `room '${roomId}' is full (${this._max.room} viewers)`,
				{ 'Retry-After': RETRY_AFTER_S });
		}
		if ((this._perAddress.get(address) || 0) >= this._max.address)
		{
			throw new HttpError(429,
				`${this._max.address} viewer sessions from one address are open already; close one first`);
		}

		this._total += 1;
		bump(this._perRoom, roomId, 1);
		bump(this._perAddress, address, 1);
		let released = false;

		return () =>
		{
			if (released)
				return;
			released = true;
			this._total -= 1;
			bump(this._perRoom, roomId, -1);
			bump(this._perAddress, address, -1);
		};
	}

	state()
	{
		return {
			viewers           : this._max.total,
			viewersPerRoom    : this._max.room,
			viewersPerAddress : this._max.address,
			admitted          : this._total
		};
	}
}

// Counts that reach zero are dropped, so that the maps hold only live entries.
function bump(map, key, delta)
{
	const value = (map.get(key) || 0) + delta;

	if (value > 0)
		map.set(key, value);
	else
		map.delete(key);
}

module.exports = { Admission };
