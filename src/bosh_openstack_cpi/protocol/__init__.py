"""The CPI wire protocol: request envelope, dispatch, errors, logging."""
