'use strict';

// An error that maps to one HTTP status. Anything else that reaches the HTTP
// layer is a bug: it is logged and answered 500 without details.
class HttpError extends Error
{
	constructor(status, message, headers = {})
	{
		super(message);
		this.name = 'HttpError';
		this.status = status;
		this.headers = headers;
	}
}

module.exports = { HttpError };
