class AgoraError(Exception):
    """An error the user can fix. The message names the file, line, key or model at fault.

    The command line prints it without a traceback.
    """
