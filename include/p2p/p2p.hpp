#pragma once
/// @file p2p.hpp
/// Umbrella header: everything public of p2p-manager.

#include <p2p/answers.hpp>
#include <p2p/codec.hpp>
#include <p2p/error.hpp>
#include <p2p/events.hpp>
#include <p2p/format.hpp>
#include <p2p/host.hpp>
#include <p2p/lifecycle.hpp>
#include <p2p/manager.hpp>
#include <p2p/message.hpp>
#include <p2p/options.hpp>
#include <p2p/peer.hpp>
#include <p2p/stats.hpp>
