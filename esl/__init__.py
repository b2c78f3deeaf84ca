"""FreeSWITCH edge (event socket, greenswitch/gevent, its own process mode).

Not implemented in this release: no adapter lives here yet, and ``pbx.type: freeswitch``
is refused at start-up.  The core (events, rules, calls, consent policy) is PBX-neutral so
the ESL adapter plugs into it the way ``ami/`` does.
"""
